"""plba.testing.drain: returns once every published task is handled, and says what is left when it cannot."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from plba import QueueWorker, Task, hookimpl
from plba.backoff import Backoff
from plba.testing import drain, wait_until, worker_status


class Jobs:
    """A plugin with the queues `jobs` and `other`; the `jobs` worker runs `handler`."""

    name = "jobs"

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.queue: Any = None

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        """One queue with a worker of four threads, one queue without a worker."""
        self.queue = registry.queue("jobs")
        registry.queue("other")
        registry.add_worker(QueueWorker("jobs.worker", self.queue, self.handler, concurrency=4, max_attempts=3,
                                        retry_backoff=Backoff(base=0.01, cap=0.01), poll_timeout=0.05))


def test_drain_returns_once_every_published_task_was_handled(plba_runtime) -> None:
    # Given a runtime whose handler takes a moment, and 40 tasks published to it
    handled: list[int] = []
    lock = threading.Lock()

    def slow(task: Task) -> None:
        time.sleep(0.005)
        with lock:
            handled.append(task.payload["n"])

    plugin = Jobs(slow)
    runtime = plba_runtime(plugin)
    for n in range(40):
        plugin.queue.publish(Task("job", {"n": n}))
    # When the runtime is drained
    drain(runtime)
    # Then every task was handled and acked, and no worker is busy
    assert sorted(handled) == list(range(40))
    assert plugin.queue.stats()["depth"] == plugin.queue.stats()["in_flight"] == 0
    assert worker_status(runtime, "jobs.worker")["processed"] == 40


def test_drain_waits_for_retries_to_end_in_the_dead_letters(plba_runtime) -> None:
    # Given a handler that always fails, three attempts each
    def broken(task: Task) -> None:
        raise ValueError("no")

    plugin = Jobs(broken)
    runtime = plba_runtime(plugin)
    for n in range(3):
        plugin.queue.publish(Task("job", {"n": n}))
    # When only the `jobs` queue is drained
    drain(runtime, "jobs")
    # Then each task went through its attempts into the dead letters
    assert plugin.queue.stats()["dead"] == 3


def test_drain_names_a_queue_that_does_not_drain_and_an_unknown_one(plba_runtime) -> None:
    # Given a task in a queue no worker consumes
    plugin = Jobs(lambda task: None)
    runtime = plba_runtime(plugin)
    runtime.registry.queues["other"].publish(Task("job", {}))
    # Then draining it fails naming the queue, and an unknown name is refused with the known ones
    with pytest.raises(AssertionError, match="queue 'other'"):
        drain(runtime, timeout=0.2)
    with pytest.raises(KeyError, match=r"no queue named 'nope'; the runtime has \['jobs', 'other'\]"):
        drain(runtime, "nope")


def test_wait_until_checks_again_as_soon_as_it_is_woken() -> None:
    # Given a condition that becomes true in another thread, which then sets the wake event
    done, wake = threading.Event(), threading.Event()

    def finish() -> None:
        done.set()
        wake.set()

    # When waiting with an interval far longer than the test runs
    threading.Timer(0.05, finish).start()
    # Then the wait returns once woken, without waiting out the interval
    assert wait_until(done.is_set, timeout=600, interval=600, wake=wake) is True
