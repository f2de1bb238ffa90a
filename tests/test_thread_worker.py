"""ThreadWorker in a real runtime: prompt stops, crashes restarted by the supervisor, busy counters, close()."""

from __future__ import annotations

import threading

from plba import ApplicationModule, ThreadWorker
from plba.testing import health_of, wait_until, worker_status

FAST_RESTARTS = {"platform": {"supervisor": {"restart_backoff": 0.01, "restart_backoff_max": 0.05}}}


class Waiter(ThreadWorker):
    """Waits a minute between rounds: only the stop event can end it quickly."""

    def __init__(self) -> None:
        super().__init__("demo.waiter", threads=2)
        self.rounds = 0
        self.closed = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(60):
            self.rounds += 1

    def close(self) -> None:
        self.closed += 1


class Flaky(ThreadWorker):
    """Raises in its first run, works (one unit a round) afterwards."""

    def __init__(self) -> None:
        super().__init__("demo.flaky")
        self.starts = 0

    def run(self, stop: threading.Event) -> None:
        self.starts += 1
        if self.starts == 1:
            raise ConnectionError("mailbox went away")
        while not stop.wait(0.01):
            with self.busy():
                pass


class Units(ThreadWorker):
    """Processes the items it is given; an item "bad" raises inside its unit of work."""

    def __init__(self, items: list[str]) -> None:
        super().__init__("demo.units")
        self.items = items
        self.release = threading.Event()

    def run(self, stop: threading.Event) -> None:
        for item in self.items:
            try:
                with self.busy():
                    if item == "slow":
                        self.release.wait(30)
                    if item == "bad":
                        raise ValueError(f"cannot handle {item}")
            except ValueError:
                pass
        stop.wait()


class Quitter(ThreadWorker):
    """Returns at once, without being asked to stop."""

    def __init__(self) -> None:
        super().__init__("demo.quitter")
        self.starts = 0

    def run(self, stop: threading.Event) -> None:
        self.starts += 1


def plugin_of(*workers: ThreadWorker) -> ApplicationModule:
    class Demo(ApplicationModule):
        name = "demo"

        def register(self, registry) -> None:
            for worker in workers:
                registry.add_worker(worker)

    return Demo()


def test_a_worker_that_returns_when_asked_stops_without_waiting_out_its_wait(plba_runtime) -> None:
    # Given a two-thread worker that waits 60 s per round on its stop event
    worker = Waiter()
    runtime = plba_runtime(plugin_of(worker))
    assert worker_status(runtime, "demo.waiter")["state"] == "idle"
    # When the runtime stops with a 5 s budget
    summary = runtime.stop(timeout=5)
    # Then the worker was not forced: it returned as soon as the event was set, and is stopped
    assert summary.workers_forced == []
    assert worker_status(runtime, "demo.waiter")["state"] == "stopped"
    assert worker.rounds == 0
    # And close() is called only when the runtime closes, once however often close is called
    assert worker.closed == 0
    runtime.close()
    runtime.close()
    assert worker.closed == 1


def test_a_crashing_worker_is_unhealthy_then_restarted_by_the_supervisor(plba_runtime) -> None:
    # Given a worker whose first run raises
    worker = Flaky()
    runtime = plba_runtime(plugin_of(worker), settings=FAST_RESTARTS)
    # When the supervisor notices, then it restarts the worker, which then does its work
    wait_until(lambda: worker_status(runtime, "demo.flaky")["processed"] >= 3, message="work after the restart")
    status = worker_status(runtime, "demo.flaky")
    assert status["restarts"] == 1
    assert worker.starts == 2
    assert health_of(runtime, "demo.flaky")["status"] == "ok"


def test_a_crash_is_reported_with_its_error_until_the_restart() -> None:
    # Given a worker whose first run raises, started without a supervisor
    worker = Flaky()
    worker.start()
    # When its thread has ended
    assert worker.join(5)
    # Then it reads failed and unhealthy, naming the error
    assert worker.status().state == "failed"
    assert worker.status().last_error == "ConnectionError: mailbox went away"
    assert worker.health().status == "unhealthy"
    assert "mailbox went away" in worker.health().detail


def test_a_run_that_returns_unasked_counts_as_a_crash_and_is_restarted(plba_runtime) -> None:
    # Given a worker whose run returns at once
    worker = Quitter()
    runtime = plba_runtime(plugin_of(worker), settings=FAST_RESTARTS)
    # When it is watched, then the supervisor restarts it
    wait_until(lambda: worker.starts >= 2, message="a second start")
    assert worker_status(runtime, "demo.quitter")["restarts"] >= 1


def test_units_of_work_show_busy_and_are_counted(plba_runtime) -> None:
    # Given a worker with a good item, a bad one, then a slow one
    worker = Units(["good", "bad", "slow"])
    runtime = plba_runtime(plugin_of(worker))
    # When it is in the slow one, then it reads busy with one in flight, one processed and one failed
    status = wait_until(lambda: (s := worker_status(runtime, "demo.units"))["state"] == "busy" and s,
                        message="busy on the slow item")
    assert (status["in_flight"], status["processed"], status["failed"]) == (1, 1, 1)
    assert status["last_error"] == "ValueError: cannot handle bad"
    # And once the slow one is done it is idle again
    worker.release.set()
    wait_until(lambda: worker_status(runtime, "demo.units")["state"] == "idle", message="idle")
    assert worker_status(runtime, "demo.units")["processed"] == 2
