"""WorkerSupervisor and HealthRegistry: restarts with backoff, restart budget, isolation of failures."""

from __future__ import annotations

import threading

from plba.backoff import Backoff
from plba.contracts import HealthStatus, Worker, WorkerHealth, WorkerState, WorkerStatus
from plba.health import HealthRegistry
from plba.supervisor import RestartPolicy, WorkerSupervisor
from tests.helpers import wait_for

QUICK = RestartPolicy(budget=3, window=60, backoff=Backoff(base=0.01, cap=0.02), check_interval=0.01)


class CrashingWorker(Worker):
    """A worker whose thread dies after `crashes_left` starts, then runs fine."""

    def __init__(self, name: str, crashes: int, critical: bool = True) -> None:
        self.name, self.critical = name, critical
        self.crashes_left = crashes
        self.starts = 0
        self.state = WorkerState.STOPPED

    def start(self) -> None:
        self.starts += 1
        if self.crashes_left > 0:
            self.crashes_left -= 1
            self.state = WorkerState.FAILED
        else:
            self.state = WorkerState.IDLE

    def stop(self, force: bool = False) -> None:
        self.state = WorkerState.STOPPED

    def health(self) -> WorkerHealth:
        return WorkerHealth("ok" if self.state != WorkerState.FAILED else "unhealthy", "")

    def status(self) -> WorkerStatus:
        return WorkerStatus(self.state, last_error="boom" if self.state == WorkerState.FAILED else None)


class RaisingWorker(CrashingWorker):
    """A worker whose status and health readings raise."""

    def status(self) -> WorkerStatus:
        raise RuntimeError("status exploded")

    def health(self) -> WorkerHealth:
        raise RuntimeError("health exploded")


def test_a_crashed_worker_is_restarted_until_it_stays_up() -> None:
    # Given a worker that crashes on its first two starts
    worker = CrashingWorker("flaky", crashes=2)
    supervisor = WorkerSupervisor(QUICK)
    supervisor.add(worker)
    # When supervised
    supervisor.start()
    # Then it is restarted twice and then runs
    wait_for(lambda: worker.state == WorkerState.IDLE, message="worker running")
    assert worker.starts == 3 and supervisor.restarts() == {"flaky": 2}
    supervisor.stop(1)


def test_a_critical_worker_that_keeps_crashing_is_given_up_and_reported() -> None:
    # Given a critical worker that always crashes and a budget of three restarts
    given_up = []
    worker = CrashingWorker("doomed", crashes=1000)
    supervisor = WorkerSupervisor(QUICK, on_give_up=given_up.append)
    supervisor.add(worker)
    supervisor.start()
    # Then after the budget it is given up, reported unhealthy, and the runtime is told
    wait_for(lambda: given_up, message="give up")
    assert given_up == [worker] and worker.starts == 4
    name, health, critical = supervisor.health()[0]
    assert (name, health.status, critical) == ("doomed", HealthStatus.UNHEALTHY, True)
    assert "restart budget" in health.detail
    supervisor.stop(1)


def test_a_worker_whose_readings_raise_does_not_take_the_others_down() -> None:
    # Given one worker whose status and health raise next to a healthy one
    good = CrashingWorker("good", crashes=0)
    bad = RaisingWorker("bad", crashes=0)
    supervisor = WorkerSupervisor(QUICK)
    supervisor.add(bad)
    supervisor.add(good)
    supervisor.start()
    # Then both are reported, the bad one as failed with the reason
    statuses = {s["name"]: s for s in supervisor.statuses()}
    assert statuses["good"]["state"] == "idle"
    assert statuses["bad"]["state"] == "failed" and "status exploded" in statuses["bad"]["last_error"]
    health = {name: h for name, h, _ in supervisor.health()}
    assert health["bad"].status == HealthStatus.UNHEALTHY and health["good"].status == HealthStatus.OK
    supervisor.stop(1)


def test_a_worker_that_raises_in_start_is_retried_like_a_crash() -> None:
    class FailsToStart(CrashingWorker):
        def start(self) -> None:
            self.starts += 1
            if self.starts < 3:
                raise ConnectionError("server not up yet")
            self.state = WorkerState.IDLE

    worker = FailsToStart("late", crashes=0)
    supervisor = WorkerSupervisor(QUICK)
    supervisor.add(worker)
    supervisor.start()
    wait_for(lambda: worker.state == WorkerState.IDLE, message="started on the third try")
    assert supervisor.restarts() == {"late": 2}
    supervisor.stop(1)


def test_a_hanging_health_check_is_unhealthy_after_the_timeout_and_does_not_block_others() -> None:
    # Given a check that never returns, one that raises, and a good one
    hang = threading.Event()
    registry = HealthRegistry(timeout=0.05)
    registry.add("hangs", lambda: hang.wait() and WorkerHealth("ok"))
    registry.add("raises", lambda: 1 / 0)
    registry.add("fine", lambda: WorkerHealth("ok", "all good"))
    registry.add("garbage", lambda: "ok")
    # When health is read
    readings = {c.name: c.health for c in registry.read()}
    # Then each bad one is unhealthy with a reason and the good one is ok
    assert readings["hangs"].status == HealthStatus.UNHEALTHY and "did not answer" in readings["hangs"].detail
    assert "ZeroDivisionError" in readings["raises"].detail
    assert "not WorkerHealth" in readings["garbage"].detail
    assert readings["fine"] == WorkerHealth(HealthStatus.OK, "all good")
    # And reading again does not start a second copy of the hanging check
    registry.read()
    assert sum(t.name == "health-hangs" for t in threading.enumerate()) == 1
    hang.set()


def test_health_aggregates_critical_and_non_critical_components() -> None:
    from plba.health import Component, aggregate

    ok = WorkerHealth("ok")
    bad = WorkerHealth("unhealthy", "down")
    assert aggregate([Component("a", ok, True)]) == HealthStatus.OK
    assert aggregate([Component("a", ok, True), Component("b", bad, False)]) == HealthStatus.DEGRADED
    assert aggregate([Component("a", bad, True)]) == HealthStatus.UNHEALTHY
