"""`plba run` while Redis is down at start: not ready with the reason, starts by itself, or gives up with 75."""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from plba.contracts import Task
from plba.queue.redis import RedisTaskQueue
from tests.helpers import PlbaProcess, plba_env, wait_for, write_distribution
from tests.redis.server import RedisServer, free_port

LISTENING = re.compile(r"control plane listening on (http://127\.0\.0\.1:\d+)")

PLUGIN = '''
from pathlib import Path

from plba import QueueWorker, hookimpl


class Orders:
    name = "orders"

    @hookimpl
    def register_workers(self, registry):
        queue = registry.queue("orders")
        registry.add_worker(QueueWorker("orders-worker", queue, self.handle, poll_timeout=0.1))

    def handle(self, task):
        Path("handled.txt").open("a").write(f"{task.payload}\\n")


plugin = Orders()
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A plugin distribution whose worker consumes the `orders` queue and writes what it handled."""
    return write_distribution(tmp_path / "site", "orders-plugin", "1.0", {"orders": "orders_plugin:plugin"},
                              {"orders_plugin": PLUGIN})


@pytest.fixture
def running() -> Iterator[list[PlbaProcess]]:
    """`plba run` processes, killed if a test left them running."""
    started: list[PlbaProcess] = []
    yield started
    for process in started:
        process.kill()


def ready(url: str) -> tuple[int, dict]:
    """GET /health/ready: status and body."""
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start(running: list[PlbaProcess], site: Path, cwd: Path, redis_port: int, **env: str) -> tuple[PlbaProcess, str]:
    """`plba run` with the orders queue on Redis at `redis_port`; returns it and its control URL."""
    process = PlbaProcess("run", cwd=cwd, env=plba_env(
        site, PLBA_LOAD_PLUGINS="orders", PLBA_PLATFORM__CONTROL__PORT="0",
        PLBA_PLATFORM__QUEUES__ORDERS__BACKEND="redis",
        PLBA_PLATFORM__QUEUES__ORDERS__URL=f"redis://127.0.0.1:{redis_port}/0", **env))
    running.append(process)
    process.wait_for_output("control plane listening on")
    return process, LISTENING.search(process.output()).group(1)


def test_redis_down_at_start_means_not_ready_then_the_instance_starts_by_itself(running, site, tmp_path) -> None:
    # Given `plba run` whose queue's Redis is not running yet
    port = free_port()
    run, url = start(running, site, tmp_path, port)
    run.wait_for_output("waiting for a broker")
    # Then its control plane answers, not ready, saying what it waits for
    status, body = ready(url)
    assert status == 503
    assert "waiting for a broker" in body["reason"] and "'orders'" in body["reason"]
    assert f"127.0.0.1:{port}" in body["reason"]
    # When Redis comes up a few seconds after the start
    redis = RedisServer(port=port).start()
    try:
        # Then the instance becomes ready by itself and handles tasks
        wait_for(lambda: ready(url)[0] == 200, timeout=30, message="the instance to become ready")
        queue = RedisTaskQueue("orders", redis.url)
        queue.publish(Task("order", "first"))
        queue.close()
        wait_for(lambda: (tmp_path / "handled.txt").exists(), timeout=20, message="the task to be handled")
        assert (tmp_path / "handled.txt").read_text() == "first\n"
        # And it stops cleanly
        run.signal(signal.SIGTERM)
        assert run.wait() == 0
    finally:
        redis.stop()


def test_redis_down_for_the_whole_startup_timeout_exits_75_with_one_line(running, site, tmp_path) -> None:
    # Given `plba run` giving a broker 1 s to appear, and no Redis at all
    run, _ = start(running, site, tmp_path, free_port(), PLBA_PLATFORM__STARTUP_TIMEOUT="1")
    # When the time runs out, then it exits 75 (a service manager restarts it) with one error line
    assert run.wait() == 75
    errors = [line for line in run.output().splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "'orders'" in errors[0] and "gave up after 1s (platform.startup_timeout)" in errors[0]
    assert "Traceback" not in run.output()


def test_a_stop_while_waiting_for_the_broker_exits_0_at_once(running, site, tmp_path) -> None:
    # Given `plba run` waiting for a Redis that is not there
    run, _ = start(running, site, tmp_path, free_port())
    run.wait_for_output("waiting for a broker")
    # When it is told to stop, then it exits 0 without waiting for the start-up timeout
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=20) == 0
    assert "start abandoned" in run.output()
