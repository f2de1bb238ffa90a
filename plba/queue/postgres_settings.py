"""The `[platform.queues.<name>]` table of a PostgreSQL queue, typed and checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plba.contracts import DEFAULT_DEAD_MAX
from plba.errors import ConfigError
from plba.queue.postgres_schema import check_schema_name

URL_SCHEMES = ("postgresql://", "postgres://")

# key: (type, smallest allowed value)
NUMBERS: dict[str, tuple[type, float]] = {
    "visibility_timeout": (float, 0.001),
    "max_attempts": (int, 1),
    "retry_delay": (float, 0.0),
    "retry_delay_max": (float, 0.0),
    "prefetch": (int, 1),
    "socket_timeout": (float, 0.5),
    "pool_size": (int, 1),
    "poll_interval": (float, 0.01),
    "dead_max": (int, 0),
}


@dataclass(frozen=True)
class PostgresQueueSettings:
    """What a PostgreSQL queue reads from its table; the defaults match the Redis backend's."""

    url: str
    visibility_timeout: float = 60.0
    max_attempts: int = 5
    retry_delay: float = 1.0
    retry_delay_max: float = 300.0
    prefetch: int = 20
    schema: str = "plba"
    socket_timeout: float = 10.0
    pool_size: int = 10
    poll_interval: float = 1.0
    dead_max: int = DEFAULT_DEAD_MAX

    @classmethod
    def from_table(cls, name: str, table: Any) -> PostgresQueueSettings:
        """Read and check the table, listing every bad key at once."""
        where = f"platform.queues.{name}"
        problems: list[str] = []
        values: dict[str, Any] = {}
        for key, (kind, minimum) in NUMBERS.items():
            if key not in table:
                continue
            raw = table[key]
            try:
                if isinstance(raw, bool):
                    raise TypeError
                value = kind(raw)
            except (TypeError, ValueError):
                problems.append(f"{where}.{key}: expected a number, got {raw!r}")
                continue
            if value < minimum:
                problems.append(f"{where}.{key}: must be at least {minimum}, got {value}")
            values[key] = value
        url = str(table.get("url") or "")
        if not url.startswith(URL_SCHEMES):
            problems.append(f"{where}.url: a postgresql:// URL is required for the postgres backend")
        schema = str(table.get("schema", cls.schema))
        try:
            check_schema_name(schema)
        except ValueError as exc:
            problems.append(f"{where}.schema: {exc}")
        if problems:
            raise ConfigError(problems)
        return cls(url=url, schema=schema, **values)
