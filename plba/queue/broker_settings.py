"""What the queues on a broker (Redis, PostgreSQL) share of their `[platform.queues.<name>]` table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plba.backoff import Backoff
from plba.contracts import DEFAULT_DEAD_MAX

# key: (type, smallest allowed value)
NUMBERS: dict[str, tuple[type, float]] = {
    "visibility_timeout": (float, 0.001),
    "max_attempts": (int, 1),
    "retry_delay": (float, 0.0),
    "retry_delay_max": (float, 0.0),
    "prefetch": (int, 1),
    "socket_timeout": (float, 0.5),
    "dead_max": (int, 0),
}


@dataclass(frozen=True, kw_only=True)
class BrokerQueueSettings:
    """The keys every broker queue reads, with their declared defaults (`plba/schema.py`)."""

    visibility_timeout: float = 60.0
    max_attempts: int = 5
    retry_delay: float = 1.0
    retry_delay_max: float = 300.0
    prefetch: int = 20
    socket_timeout: float = 10.0
    dead_max: int = DEFAULT_DEAD_MAX

    def queue_options(self) -> dict[str, Any]:
        """These settings as the keyword arguments a broker queue's constructor takes."""
        return {"visibility_timeout": self.visibility_timeout, "max_attempts": self.max_attempts,
                "retry_backoff": Backoff(base=self.retry_delay, cap=self.retry_delay_max),
                "prefetch": self.prefetch, "socket_timeout": self.socket_timeout, "dead_max": self.dead_max}


def read_numbers(name: str, table: Any, numbers: dict[str, tuple[type, float]], problems: list[str]) -> dict[str, Any]:
    """The keys of `numbers` that `table` sets, converted and checked; each bad one is added to `problems`."""
    where = f"platform.queues.{name}"
    values: dict[str, Any] = {}
    for key, (kind, minimum) in numbers.items():
        if key not in table:
            continue
        raw = table[key]
        try:
            if isinstance(raw, bool):
                raise TypeError  # int(True) is 1, but `true` is no number of attempts
            value = kind(raw)
        except (TypeError, ValueError):
            problems.append(f"{where}.{key}: expected a number, got {raw!r}")
            continue
        if value < minimum:
            problems.append(f"{where}.{key}: must be at least {minimum}, got {value}")
        values[key] = value
    return values
