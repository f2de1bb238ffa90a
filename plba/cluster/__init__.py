"""The cluster store: what the instances sharing `platform.cluster.url` agree on (slot claims, last firings)."""

from __future__ import annotations

import abc
import os
import socket
import uuid
from datetime import datetime
from typing import Any

from plba.errors import ConfigError


class ClusterStore(abc.ABC):
    """Shared state of a fleet, behind a small interface so backends (in-process, Redis, ...) are interchangeable.

    Every method is atomic across the fleet; a backend that cannot be reached raises.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner

    @abc.abstractmethod
    def claim(self, key: str, ttl: float) -> bool:
        """Take `key` for `ttl` seconds: True for exactly one caller in the fleet until it expires."""

    @abc.abstractmethod
    def claim_slot(self, schedule: str, slot: datetime, ttl: float) -> bool:
        """Take one slot of a schedule: True for exactly one caller per (schedule, slot) in the fleet.

        A slot no later than the last one fired is refused; a taken slot becomes the last fired.
        `ttl` (seconds) bounds how long the claim itself is kept.
        """

    @abc.abstractmethod
    def last_fired(self, schedule: str) -> datetime | None:
        """The latest slot of `schedule` claimed anywhere in the fleet (aware, UTC), or None."""

    def close(self) -> None:
        """Free connections; the default has none."""


def new_owner() -> str:
    """An identity for this process in the fleet: host, pid and a random part (pids repeat across hosts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_cluster_store(settings: Any) -> ClusterStore:
    """The store `platform.cluster.url` names: in this process when empty, Redis for a redis:// URL."""
    url = str(settings.get("platform.cluster.url", "") or "")
    owner = new_owner()
    if not url:
        from plba.cluster.memory import InProcessClusterStore

        return InProcessClusterStore(owner)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from plba.cluster.redis import RedisClusterStore

        return RedisClusterStore(url, owner)
    raise ConfigError(f"platform.cluster.url: must be empty or a redis:// URL, not {url.split('://')[0]}://...")
