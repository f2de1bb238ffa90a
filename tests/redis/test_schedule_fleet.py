"""Schedules in a fleet: three `plba run` processes sharing one Redis fire each slot once, also after a SIGKILL."""

from __future__ import annotations

import pytest

from tests.schedule.fleet import fleet_env, run_fleet


@pytest.mark.slow
def test_three_instances_fire_each_slot_once_also_after_one_is_killed(own_redis, tmp_path) -> None:
    # Given three `plba run` processes sharing one Redis as cluster store and queue
    env, log = fleet_env(tmp_path, PLBA_PLATFORM__CLUSTER__URL=own_redis.url, PLBA_PLATFORM__CONTROL__ENABLED="false",
                         PLBA_PLATFORM__QUEUES__FLEET__BACKEND="redis", PLBA_PLATFORM__QUEUES__FLEET__URL=own_redis.url)
    workdir = tmp_path / "work"
    workdir.mkdir()
    # When they run, one is killed and the others run on, then each slot fired once (see run_fleet)
    run_fleet(workdir, [env] * 3, log)
