"""The cluster store: what a fleet sharing `platform.cluster.url` shares: slot claims, heartbeats, stop requests."""

from __future__ import annotations

import abc
import os
import socket
import uuid
from datetime import datetime
from typing import Any

from plba.errors import ConfigError

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


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
    def renew(self, key: str, ttl: float) -> bool:
        """Keep `key`, claimed by this instance, for `ttl` seconds from now; False when it is no longer ours."""

    @abc.abstractmethod
    def release(self, key: str) -> None:
        """Give up `key` if this instance holds it, so another may claim it at once."""

    @abc.abstractmethod
    def claim_slot(self, schedule: str, slot: datetime, ttl: float) -> bool:
        """Take one slot of a schedule: True for exactly one caller per (schedule, slot) in the fleet.

        A slot no later than the last one fired is refused; a taken slot becomes the last fired.
        `ttl` (seconds) bounds how long the claim itself is kept.
        """

    @abc.abstractmethod
    def last_fired(self, schedule: str) -> datetime | None:
        """The latest slot of `schedule` claimed anywhere in the fleet (aware, UTC), or None."""

    @abc.abstractmethod
    def beat(self, record: dict[str, Any], ttl: float) -> None:
        """Publish this instance's heartbeat `record` (JSON-ready, with an `id`), forgotten after `ttl` seconds."""

    @abc.abstractmethod
    def instances(self) -> list[dict[str, Any]]:
        """The latest heartbeat record of every instance whose heartbeat has not expired."""

    @abc.abstractmethod
    def leave(self, instance_id: str) -> None:
        """Forget the heartbeat of `instance_id` at once (a clean stop) and any stop request for it."""

    @abc.abstractmethod
    def request_stop(self, instance_id: str, request: dict[str, Any], ttl: float) -> bool:
        """Leave `request` for live instance `instance_id` to pick up within `ttl` seconds; False when none is live."""

    @abc.abstractmethod
    def take_stop_request(self, instance_id: str) -> dict[str, Any] | None:
        """The stop request left for `instance_id`, removed as it is read (one taker), or None."""

    def close(self) -> None:
        """Free connections; the default has none."""


def new_owner() -> str:
    """An identity for this process in the fleet: host, pid and a random part (pids repeat across hosts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def url_problem(url: str) -> str | None:
    """Why `url` cannot name a cluster store (the message starting with the key), or None when it can."""
    if not url or url.startswith(REDIS_SCHEMES + POSTGRES_SCHEMES):
        return None
    return f"platform.cluster.url: must be empty, a redis:// or a postgresql:// URL, not {url.split('://')[0]}://..."


def build_cluster_store(settings: Any) -> ClusterStore:
    """The store `platform.cluster.url` names: in this process when empty, else Redis or PostgreSQL by scheme."""
    url = str(settings.get("platform.cluster.url", "") or "")
    problem = url_problem(url)
    if problem:
        raise ConfigError(problem)
    owner = new_owner()
    if not url:
        from plba.cluster.memory import InProcessClusterStore

        return InProcessClusterStore(owner)
    if url.startswith(REDIS_SCHEMES):
        from plba.cluster.redis import RedisClusterStore

        return RedisClusterStore(url, owner)
    # What url_problem lets through and is neither empty nor Redis is a PostgreSQL URL.
    try:
        from plba.cluster.postgres import PostgresClusterStore
    except ModuleNotFoundError as exc:
        if exc.name not in ("psycopg", "psycopg_pool"):
            raise
        raise ConfigError("platform.cluster.url: a postgresql:// URL needs the postgres extra "
                          "(pip install 'plba[postgres]')") from None
    return PostgresClusterStore(url, owner)
