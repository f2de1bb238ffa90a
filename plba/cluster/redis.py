"""The cluster store on Redis: every instance sharing `platform.cluster.url` claims slots through one server."""

from __future__ import annotations

from datetime import UTC, datetime

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


class RedisClusterStore(ClusterStore):
    """Claims as `SET key NX PX ttl`; the last firing of each schedule as a plain key."""

    def __init__(self, url: str, owner: str, key_prefix: str = "plba", socket_timeout: float = 5.0) -> None:
        super().__init__(owner)
        self.prefix = key_prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        self._claim_slot = self._redis.register_script(CLAIM_SLOT)

    def claim(self, key: str, ttl: float) -> bool:
        """Take `key` for `ttl` seconds unless another instance holds it."""
        return bool(self._redis.set(f"{self.prefix}:claims:{key}", self.owner, nx=True, px=_ms(ttl)))

    def claim_slot(self, schedule: str, slot: datetime, ttl: float) -> bool:
        """Take the slot unless another instance did, or a later slot was fired already."""
        at = _ms(slot.timestamp())
        keys = [f"{self._schedule_key(schedule)}:slot:{at}", f"{self._schedule_key(schedule)}:last"]
        return bool(self._claim_slot(keys=keys, args=[self.owner, at, _ms(ttl)]))

    def last_fired(self, schedule: str) -> datetime | None:
        """The latest slot claimed by any instance."""
        value = self._redis.get(f"{self._schedule_key(schedule)}:last")
        return None if value is None else datetime.fromtimestamp(int(value) / 1000, UTC)

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()

    def _schedule_key(self, schedule: str) -> str:
        # A hash tag keeps a schedule's keys in one Redis Cluster slot, as the script needs.
        return f"{self.prefix}:schedules:{{{schedule}}}"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
