"""The `[platform.queues.<name>]` table of a PostgreSQL queue, typed and checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plba.errors import ConfigError
from plba.queue.broker_settings import NUMBERS as BROKER_NUMBERS
from plba.queue.broker_settings import BrokerQueueSettings, read_numbers
from plba.queue.postgres_schema import check_schema_name

URL_SCHEMES = ("postgresql://", "postgres://")

# key: (type, smallest allowed value)
NUMBERS: dict[str, tuple[type, float]] = {**BROKER_NUMBERS, "pool_size": (int, 1), "poll_interval": (float, 0.01)}


@dataclass(frozen=True, kw_only=True)
class PostgresQueueSettings(BrokerQueueSettings):
    """What a PostgreSQL queue reads from its table: the broker keys, its URL, schema and pool."""

    url: str
    schema: str = "plba"
    pool_size: int = 10
    poll_interval: float = 1.0

    @classmethod
    def from_table(cls, name: str, table: Any) -> PostgresQueueSettings:
        """Read and check the table, listing every bad key at once."""
        where = f"platform.queues.{name}"
        problems: list[str] = []
        values = read_numbers(name, table, NUMBERS, problems)
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
