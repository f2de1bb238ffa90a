"""Schedules in a fleet: three `plba run` processes sharing one Redis fire each slot once, also after a SIGKILL."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from plba.testing import wait_until
from tests.helpers import PlbaProcess, plba_env, write_distribution

# Written only against DESIGN.md: a routine every second that records its slot and its process in Redis.
FLEET_PLUGIN = '''
import os

import redis

from plba import hookimpl


@hookimpl
def register_workers(registry):
    client = redis.Redis.from_url(registry.settings.get("platform.cluster.url"))

    def tick(firing):
        client.rpush("fleet:firings", f"{int(firing.scheduled_at.timestamp())} {os.getpid()}")

    registry.schedule("fleet.tick", tick, every=1)
'''


@pytest.fixture
def fleet_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    write_distribution(site, "fleet-plugin", "1.0.0", {"fleet": "fleet_plugin"}, {"fleet_plugin": FLEET_PLUGIN})
    return site


def firings(client: redis.Redis) -> list[tuple[int, int]]:
    """(slot second, pid) of every firing so far."""
    return [tuple(map(int, item.split())) for item in client.lrange("fleet:firings", 0, -1)]


@pytest.mark.slow
def test_three_instances_fire_each_slot_once_also_after_one_is_killed(own_redis, fleet_site, tmp_path) -> None:
    # Given three `plba run` processes sharing one Redis through platform.cluster.url
    env = plba_env(fleet_site, PLBA_PLATFORM__CLUSTER__URL=own_redis.url, PLBA_PLATFORM__CONTROL__ENABLED="false",
                   PLBA_LOAD_PLUGINS="fleet")
    workdir = tmp_path / "work"
    workdir.mkdir()
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    fleet = [PlbaProcess("run", cwd=workdir, env=env) for _ in range(3)]
    try:
        for process in fleet:
            process.wait_for_output("runtime started")
        # When they run for a while, then one of them is killed, and the other two run on
        wait_until(lambda: len(firings(client)) >= 6, timeout=20, message="six firings")
        fleet[0].process.send_signal(signal.SIGKILL)
        fleet[0].wait()
        killed_at = time.time()
        wait_until(lambda: len({s for s, _ in firings(client) if s > killed_at + 1}) >= 6, timeout=20,
                   message="six firings after the kill")
        for process in fleet[1:]:
            process.signal(signal.SIGTERM)
        assert [process.wait() for process in fleet[1:]] == [0, 0]
    finally:
        for process in fleet:
            process.kill()
    # Then no slot fired twice, and every slot between the first and the last fired, but at most
    # the one in flight in the killed process
    fired = firings(client)
    slots = [slot for slot, _ in fired]
    assert len(slots) == len(set(slots)), f"a slot fired twice: {fired}"
    missing = set(range(min(slots), max(slots) + 1)) - set(slots)
    assert len(missing) <= 1, f"slots never fired: {sorted(missing)}"
    # And the work was shared: more than one instance fired, none after it was killed
    assert len({pid for _, pid in fired}) >= 2
    assert all(slot <= killed_at for slot, pid in fired if pid == fleet[0].process.pid)
