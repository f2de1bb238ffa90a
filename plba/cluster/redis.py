"""The cluster store on Redis: every instance sharing `platform.cluster.url` claims slots through one server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis

from plba.cluster import ClusterStore

# KEYS: the slot's claim key, the schedule's last-fired key. ARGV: owner, slot (ms since the epoch), ttl (ms).
# One script, so "not older than the last firing" and "not claimed yet" are decided together.
CLAIM_SLOT = """
local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[2]) <= last then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""

# KEYS: a claim key. ARGV: owner, ttl (ms). Only the owner's claim is renewed or released.
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisClusterStore(ClusterStore):
    """Claims as `SET key NX PX ttl`; the last firing of each schedule as a plain key.

    Heartbeats are one key per instance (`SET ... PX ttl`, so a dead instance's expires by
    itself) plus a set of the ids seen, from which ids whose key expired are dropped on reading.
    A stop request is a key next to the heartbeat, read and deleted in one step.
    """

    def __init__(self, url: str, owner: str, key_prefix: str = "plba", socket_timeout: float = 5.0) -> None:
        super().__init__(owner)
        self.prefix = key_prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        self._claim_slot = self._redis.register_script(CLAIM_SLOT)
        self._renew = self._redis.register_script(RENEW)
        self._release = self._redis.register_script(RELEASE)

    def claim(self, key: str, ttl: float) -> bool:
        """Take `key` for `ttl` seconds unless another instance holds it."""
        return bool(self._redis.set(f"{self.prefix}:claims:{key}", self.owner, nx=True, px=_ms(ttl)))

    def renew(self, key: str, ttl: float) -> bool:
        """Extend the claim if this instance still holds it."""
        return bool(self._renew(keys=[f"{self.prefix}:claims:{key}"], args=[self.owner, _ms(ttl)]))

    def release(self, key: str) -> None:
        """Delete the claim if this instance holds it."""
        self._release(keys=[f"{self.prefix}:claims:{key}"], args=[self.owner])

    def claim_slot(self, schedule: str, slot: datetime, ttl: float) -> bool:
        """Take the slot unless another instance did, or a later slot was fired already."""
        at = _ms(slot.timestamp())
        keys = [f"{self._schedule_key(schedule)}:slot:{at}", f"{self._schedule_key(schedule)}:last"]
        return bool(self._claim_slot(keys=keys, args=[self.owner, at, _ms(ttl)]))

    def last_fired(self, schedule: str) -> datetime | None:
        """The latest slot claimed by any instance."""
        value = self._redis.get(f"{self._schedule_key(schedule)}:last")
        return None if value is None else datetime.fromtimestamp(int(value) / 1000, UTC)

    def beat(self, record: dict[str, Any], ttl: float) -> None:
        """Write the record with its expiry and note the id (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._instance_key(record["id"]), json.dumps(record, default=str), px=_ms(ttl))
        pipe.sadd(self._instances_key, record["id"])
        pipe.execute()

    def instances(self) -> list[dict[str, Any]]:
        """Every record whose key has not expired; ids whose key is gone are dropped from the set."""
        # The client does not decode responses: set members are bytes.
        ids = sorted(member.decode() if isinstance(member, bytes) else member
                     for member in self._redis.smembers(self._instances_key))
        if not ids:
            return []
        values = self._redis.mget([self._instance_key(instance_id) for instance_id in ids])
        gone = [instance_id for instance_id, value in zip(ids, values, strict=True) if value is None]
        if gone:
            self._redis.srem(self._instances_key, *gone)
        return [json.loads(value) for value in values if value is not None]

    def leave(self, instance_id: str) -> None:
        """Delete the heartbeat and any stop request, and drop the id."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(self._instance_key(instance_id), self._stop_key(instance_id))
        pipe.srem(self._instances_key, instance_id)
        pipe.execute()

    def request_stop(self, instance_id: str, request: dict[str, Any], ttl: float) -> bool:
        """Leave the request next to a live heartbeat."""
        if not self._redis.exists(self._instance_key(instance_id)):
            return False
        self._redis.set(self._stop_key(instance_id), json.dumps(request), px=_ms(ttl))
        return True

    def take_stop_request(self, instance_id: str) -> dict[str, Any] | None:
        """GET and DEL in one transaction, so a request is taken once."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(self._stop_key(instance_id))
        pipe.delete(self._stop_key(instance_id))
        value, _ = pipe.execute()
        return None if value is None else json.loads(value)

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()

    @property
    def _instances_key(self) -> str:
        return f"{self.prefix}:instances"

    def _instance_key(self, instance_id: str) -> str:
        return f"{self.prefix}:instances:{instance_id}"

    def _stop_key(self, instance_id: str) -> str:
        return f"{self.prefix}:instances:{instance_id}:stop"

    def _schedule_key(self, schedule: str) -> str:
        # A hash tag keeps a schedule's keys in one Redis Cluster slot, as the script needs.
        return f"{self.prefix}:schedules:{{{schedule}}}"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
