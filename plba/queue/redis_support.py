"""Helpers for the Redis queue: settings, safe URLs, key names and the task encoding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from plba.contracts import Task
from plba.errors import ConfigError
from plba.queue.broker_settings import NUMBERS, BrokerQueueSettings, read_numbers

DEFAULT_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, kw_only=True)
class RedisQueueSettings(BrokerQueueSettings):
    """The `[platform.queues.<name>]` table of a Redis queue, typed and checked: the broker keys, URL and prefix."""

    url: str = DEFAULT_URL
    key_prefix: str = "plba"

    @classmethod
    def from_table(cls, name: str, table: Any) -> RedisQueueSettings:
        """Read and check the table, listing every bad key at once."""
        problems: list[str] = []
        values = read_numbers(name, table, NUMBERS, problems)
        if problems:
            raise ConfigError(problems)
        return cls(url=str(table.get("url", DEFAULT_URL)), key_prefix=str(table.get("key_prefix", "plba")), **values)


@dataclass(frozen=True)
class QueueKeys:
    """The Redis keys of one queue; one hash tag keeps them in one Cluster slot, as the scripts need."""

    stream: str
    delayed: str
    dead: str
    attempts: str
    paused: str

    @classmethod
    def for_queue(cls, prefix: str, name: str) -> QueueKeys:
        """The keys of queue `name` under `prefix`."""
        tag = f"{prefix}:{{{name}}}"
        return cls(f"{tag}:tasks", f"{tag}:delayed", f"{tag}:dead", f"{tag}:attempts", f"{tag}:paused")

    def all(self) -> list[str]:
        """The keys in the order the Lua scripts expect them."""
        return [self.stream, self.delayed, self.dead, self.attempts, self.paused]


def encode(task: Task) -> str:
    """A task as the JSON stored in a stream entry."""
    return json.dumps(task.to_dict(), separators=(",", ":"))


def decode(body: str) -> Task:
    """A task from the JSON of a stream entry; ValueError or KeyError when it is not one."""
    return Task.from_dict(json.loads(body))


def entry_time(entry_id: str) -> float:
    """When a stream entry was added, in epoch seconds, from its id (`<milliseconds>-<sequence>`)."""
    return int(entry_id.split("-", 1)[0]) / 1000
