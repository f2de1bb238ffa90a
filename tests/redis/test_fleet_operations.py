"""Operating a fleet: three `plba run` processes on one Redis, driven through the CLI and the control plane.

Dead letters are listed, fixed by a settings change and requeued exactly once; a paused queue is not
consumed anywhere until resumed; every instance sees the others, a killed one leaves, another is
stopped through the cluster store; a log level reverts by itself; and each action is in the audit log.
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from plba import Task
from plba.queue.redis import RedisTaskQueue
from plba.testing import wait_until
from tests.helpers import PlbaProcess, plba, plba_env, write_distribution

TOKEN = "fleet-token-5d2e9b"
FLEET_PLUGIN = '''
import os

import redis

from plba import QueueWorker, hookimpl

STATE = {"broken": True}


@hookimpl
def configure(settings):
    STATE["broken"] = bool(settings.get("fleetapp.broken", True))


@hookimpl
def register_workers(registry):
    client = redis.Redis.from_url(registry.settings.get("platform.cluster.url"))

    def handle(task):
        if STATE["broken"]:
            raise RuntimeError(f"order {task.payload['n']} refused while fleetapp.broken is set")
        client.rpush("fleet:handled", f"{task.id} {os.getpid()}")

    registry.add_worker(QueueWorker("fleetapp.orders", registry.queue("orders"), handle, concurrency=2,
                                    poll_timeout=0.1))
'''
SETTINGS = '''
[platform.cluster]
url = "{url}"
heartbeat_interval = 0.3

[platform.queues.orders]
backend = "redis"
url = "{url}"
max_attempts = 2
retry_delay = 0.05

[platform.tracing]
transport = "noop"

[fleetapp]
broken = {broken}
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Instance:
    """One `plba run` of the fleet with its control plane URL."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = PlbaProcess("run", cwd=workdir, env={**env, "PLBA_PLATFORM__CONTROL__PORT": str(port)})

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request with the token: (status, JSON)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def ids(self) -> set[str]:
        """The ids of the instances this one sees."""
        return {record["id"] for record in self.call("GET", "/instances")[1]["instances"]}

    def own_id(self) -> str:
        """This instance's id (the one whose control URL is its own)."""
        [record] = [r for r in self.call("GET", "/instances")[1]["instances"] if r["control_url"] == self.url]
        return record["id"]

    def last_seen(self, instance_id: str) -> str | None:
        """When `instance_id` last beat, as this instance sees it."""
        records = self.call("GET", "/instances")[1]["instances"]
        return next((r["last_seen"] for r in records if r["id"] == instance_id), None)


@pytest.fixture
def fleet(own_redis, tmp_path: Path):
    """Three instances of the fleet plugin sharing one Redis and one working directory."""
    site = tmp_path / "site"
    write_distribution(site, "fleetapp-plugin", "1.0.0", {"fleetapp": "fleetapp_plugin"},
                       {"fleetapp_plugin": FLEET_PLUGIN})
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "settings.toml").write_text(SETTINGS.format(url=own_redis.url, broken="true"))
    (workdir / ".secrets.toml").write_text(f'[platform.control]\ntoken = "{TOKEN}"\n')
    env = plba_env(site, PLBA_LOAD_PLUGINS="fleetapp")
    instances = [Instance(workdir, env) for _ in range(3)]
    try:
        for instance in instances:
            instance.process.wait_for_output("runtime started")
        yield instances, workdir, env, own_redis.url
    finally:
        for instance in instances:
            instance.process.kill()


def cli(workdir: Path, env: dict[str, str], *args: str) -> Any:
    """Run `plba ARGS` in the fleet's directory."""
    return plba(*args, cwd=workdir, env=env)


def handled(client: redis.Redis) -> list[str]:
    """Task ids handled so far, in order (one entry per handling)."""
    return [item.split()[0] for item in client.lrange("fleet:handled", 0, -1)]


@pytest.mark.slow
def test_a_fleet_is_operated_from_any_of_its_instances(fleet) -> None:
    instances, workdir, env, url = fleet
    a, b, c = instances
    client = redis.Redis.from_url(url, decode_responses=True)
    queue = RedisTaskQueue("orders", url)
    try:
        # Given five tasks that fail while fleetapp.broken is set: they reach the dead letters
        published = [Task("order", {"n": n, "card_password": "pw-never-shown"}) for n in range(5)]
        for task in published:
            queue.publish(task)
        wait_until(lambda: queue.stats()["dead"] == 5, timeout=30, message="five dead letters")

        # Then `plba queues dead` and GET /queues/<name>/dead (from another instance) list them with their errors
        listed = cli(workdir, env, "queues", "dead", "orders", "--url", a.url, "--json")
        assert listed.returncode == 0, listed.stderr
        dead = json.loads(listed.stdout)
        assert sorted(task["id"] for task in dead) == sorted(task.id for task in published)
        assert all("refused while fleetapp.broken is set" in task["error"] for task in dead)
        status, answer = b.call("GET", "/queues/orders/dead")
        assert status == 200 and len(answer["tasks"]) == 5
        assert "pw-never-shown" not in listed.stdout + json.dumps(answer)

        # When the setting is fixed and reloaded everywhere, and every dead task is requeued from one instance
        (workdir / "settings.toml").write_text(SETTINGS.format(url=url, broken="false"))
        for instance in instances:
            assert instance.call("POST", "/actions/reload", {})[1]["changed"] == ["fleetapp.broken"]
        requeued = cli(workdir, env, "queues", "requeue", "orders", "--all", "--url", a.url)
        assert requeued.returncode == 0 and "moved 5" in requeued.stdout

        # Then each is processed exactly once and nothing stays dead
        wait_until(lambda: len(handled(client)) >= 5, timeout=30, message="five tasks handled")
        wait_until(lambda: queue.stats()["in_flight"] == 0 and queue.stats()["depth"] == 0, message="a quiet queue")
        assert sorted(handled(client)) == sorted(task.id for task in published)
        assert queue.stats()["dead"] == 0

        # When the queue is paused, no instance consumes what is published until it is resumed
        assert cli(workdir, env, "queues", "pause", "orders", "--url", b.url).returncode == 0
        for instance in instances:
            wait_until(lambda i=instance: "paused" in json.dumps(i.call("GET", "/health")[1]),
                       message="every instance sees the pause")
        late = [Task("order", {"n": n}) for n in range(5, 8)]
        for task in late:
            queue.publish(task)
        # Two heartbeats of every instance later, nobody has leased any of them.
        seen = {instance.own_id(): a.last_seen(instance.own_id()) for instance in instances}
        for _ in range(2):
            for instance_id in list(seen):
                before = seen[instance_id]
                wait_until(lambda i=instance_id, t=before: a.last_seen(i) != t, message="a heartbeat")
                seen[instance_id] = a.last_seen(instance_id)
        assert queue.stats()["depth"] == 3 and len(handled(client)) == 5
        assert a.call("GET", "/queues")[1]["queues"]["orders"]["paused"] is True
        assert cli(workdir, env, "queues", "resume", "orders", "--url", c.url).returncode == 0
        wait_until(lambda: len(handled(client)) == 8, timeout=30, message="the late tasks handled")

        # And every instance sees all three
        ids = {instance.own_id() for instance in instances}
        assert len(ids) == 3 and all(instance.ids() == ids for instance in instances)
        listing = cli(workdir, env, "instances", "--url", b.url, "--json")
        assert {record["id"] for record in json.loads(listing.stdout)} == ids

        # When a log level is set for a second, it reverts by itself
        assert cli(workdir, env, "loggers", "set", "fleetapp", "DEBUG", "--for", "1", "--url", a.url).returncode == 0
        assert a.call("GET", "/loggers")[1]["loggers"]["fleetapp"]["level"] == "DEBUG"
        wait_until(lambda: a.call("GET", "/loggers")[1]["loggers"]["fleetapp"]["level"] is None,
                   message="the level reverted")

        # When one instance is killed, it leaves the others' list within a few heartbeats
        killed = c.own_id()
        c.process.signal(signal.SIGKILL)
        c.process.wait()
        wait_until(lambda: killed not in a.ids() and killed not in b.ids(), message="the killed instance gone")

        # When another is stopped through the first one, it stops gracefully with exit code 0
        target = b.own_id()
        stopped = cli(workdir, env, "stop", "--instance", target, "--url", a.url)
        assert stopped.returncode == 0, stopped.stderr
        assert b.process.wait() == 0
        assert a.ids() == {a.own_id()}

        # Then each action is in the audit log with its actor and outcome
        events = a.call("GET", "/audit?limit=100")[1]["events"]
        done = {(event["action"], event["actor"], event["outcome"]) for event in events}
        for action in ("reload", "queues.requeue", "queues.pause", "queues.resume", "loggers", "instances.stop",
                       "stop"):
            assert (action, "service", "ok") in done, f"{action} not audited: {done}"
        stop_event = next(event for event in events if event["action"] == "stop")
        assert stop_event["remote_addr"] == a.own_id()
        audit_table = cli(workdir, env, "audit", "--url", a.url, "--limit", "5")
        assert audit_table.returncode == 0 and "instances.stop" in audit_table.stdout
    finally:
        queue.close()


@pytest.mark.slow
def test_bad_operator_input_is_one_line_and_changes_nothing(fleet) -> None:
    instances, workdir, env, url = fleet
    a = instances[0]
    queue = RedisTaskQueue("orders", url)
    try:
        queue.publish(Task("order", {"n": 1}))
        wait_until(lambda: queue.stats()["dead"] == 1, timeout=30, message="one dead letter")
        cases = [
            (("queues", "requeue", "nope", "--all"), "no queue named 'nope' (known: orders)"),
            (("queues", "requeue", "orders", "--id", "no-such-task"), "are not dead letters"),
            (("queues", "requeue", "orders"), "give --id ID (repeatable) or --all"),
            (("queues", "purge", "orders", "--yes"), "give --dead or --ready"),
            (("queues", "purge", "orders", "--dead"), "add --yes"),
            (("loggers", "set", "fleetapp", "LOUD"), "level must be one of DEBUG"),
            (("stop", "--instance", "nobody:1:x"), "no live instance 'nobody:1:x'"),
        ]
        for args, words in cases:
            result = cli(workdir, env, *args, "--url", a.url)
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and words in lines[0], (args, result.stderr)
        huge = a.call("POST", "/actions/queues/orders/requeue", {"ids": [f"id-{n:05d}" for n in range(1500)]})
        assert huge[0] == 400 and "at most 1000" in huge[1]["error"]
        assert a.call("POST", "/actions/queues/orders/purge", {})[0] == 400
        assert queue.stats()["dead"] == 1 and a.call("GET", "/queues")[1]["queues"]["orders"]["paused"] is False
        outcomes = {e["outcome"] for e in a.call("GET", "/audit")[1]["events"]}
        assert outcomes == {"rejected"}
    finally:
        queue.close()
