"""QueueWorker: ack after the handler, retries with backoff, dead letters, concurrency, stop."""

from __future__ import annotations

import threading
import time

import pytest

from plba import QueueWorker, Task, TaskHandler
from plba.backoff import Backoff
from plba.contracts import WorkerState
from plba.queue import InMemoryTaskQueue
from tests.helpers import wait_for

FAST_RETRY = Backoff(base=0.01, cap=0.05, jitter=0)


@pytest.fixture
def queue() -> InMemoryTaskQueue:
    return InMemoryTaskQueue()


def run_worker(worker: QueueWorker):
    worker.start()
    return worker


def stop(worker: QueueWorker) -> None:
    worker.stop()
    assert worker.join(10)


def test_a_task_is_acknowledged_only_after_its_handler_returned(queue: InMemoryTaskQueue) -> None:
    # Given a handler that waits for permission to finish
    release = threading.Event()
    seen = []

    def handler(task: Task) -> None:
        seen.append(task.attempts)
        release.wait(10)

    worker = run_worker(QueueWorker("w", queue, handler))
    queue.publish(Task("t", 1))
    # When the handler is still running
    wait_for(lambda: seen, message="handler called")
    # Then the task is in flight, not acknowledged, and its attempt was counted before the handler ran
    assert queue.stats()["in_flight"] == 1 and queue.stats()["acked"] == 0 and seen == [1]
    assert worker.status().state == WorkerState.BUSY
    release.set()
    wait_for(lambda: queue.stats()["acked"] == 1, message="ack")
    assert worker.status().processed == 1
    stop(worker)


def test_a_failing_task_is_retried_with_backoff_until_it_succeeds(queue: InMemoryTaskQueue) -> None:
    attempts = []

    def flaky(task: Task) -> None:
        attempts.append(task.attempts)
        if task.attempts < 3:
            raise RuntimeError("database is locked")

    worker = run_worker(QueueWorker("w", queue, flaky, max_attempts=5, retry_backoff=FAST_RETRY))
    queue.publish(Task("t", 1))
    wait_for(lambda: worker.status().processed == 1, message="success on the third attempt")
    assert attempts == [1, 2, 3]
    assert worker.metrics()["retried"] == 2 and worker.status().last_error == "RuntimeError: database is locked"
    stop(worker)


def test_a_task_that_always_fails_is_dead_lettered_with_its_error(queue: InMemoryTaskQueue) -> None:
    # Given a handler that always raises and three attempts allowed
    def broken(task: Task) -> None:
        raise ValueError(f"cannot parse {task.payload}")

    worker = run_worker(QueueWorker("w", queue, broken, max_attempts=3, retry_backoff=FAST_RETRY))
    # When a task is processed
    queue.publish(Task("t", "order-7"))
    wait_for(lambda: queue.stats()["dead"] == 1, message="dead letter")
    # Then it was tried three times and dead-lettered with the error; nothing is left anywhere else
    dead = queue.list_dead().tasks[0]
    assert dead.attempts == 3 and dead.metadata["error"] == "ValueError: cannot parse order-7"
    assert worker.metrics()["dead_lettered"] == 1
    stats = queue.stats()
    assert stats["depth"] == stats["delayed"] == stats["in_flight"] == 0
    stop(worker)


def test_a_task_delivered_beyond_its_attempts_is_dead_lettered_without_running(queue: InMemoryTaskQueue) -> None:
    # Given a task whose earlier deliveries never finished (the process died mid-handler)
    ran = []
    queue.publish(Task("t", 1, {"attempts": 3}))
    worker = run_worker(QueueWorker("w", queue, ran.append, max_attempts=3))
    # When it is delivered a fourth time
    wait_for(lambda: queue.stats()["dead"] == 1, message="dead letter")
    # Then the handler never ran and the error says why
    assert ran == []
    assert "never finished" in queue.list_dead().tasks[0].metadata["error"]
    stop(worker)


def test_concurrency_runs_handlers_in_parallel(queue: InMemoryTaskQueue) -> None:
    # Given three tasks whose handlers each wait for all three to be running
    barrier = threading.Barrier(3, timeout=10)
    worker = run_worker(QueueWorker("w", queue, lambda task: barrier.wait(), concurrency=3))
    for n in range(3):
        queue.publish(Task("t", n))
    # Then all three complete (which needs them to run at the same time)
    wait_for(lambda: worker.status().processed == 3, message="three parallel tasks")
    assert worker.status().failed == 0
    stop(worker)


def test_a_task_handler_class_is_called_through_handle(queue: InMemoryTaskQueue) -> None:
    class Collect(TaskHandler):
        def __init__(self) -> None:
            self.payloads = []

        def handle(self, task: Task) -> None:
            self.payloads.append(task.payload)

    handler = Collect()
    worker = run_worker(QueueWorker("w", queue, handler))
    queue.publish(Task("t", "hello"))
    wait_for(lambda: handler.payloads == ["hello"], message="handled")
    stop(worker)


class Gate:
    """A handler that signals it started, then waits until the test opens the gate."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, task: Task) -> None:
        self.started.set()
        self.release.wait(10)


def test_stop_lets_the_in_flight_task_finish_and_leaves_the_rest_queued(queue: InMemoryTaskQueue) -> None:
    # Given a worker busy with the first of three tasks
    gate = Gate()
    worker = run_worker(QueueWorker("w", queue, gate))
    for n in range(3):
        queue.publish(Task("t", n))
    gate.started.wait(10)
    # When it is asked to stop and the in-flight task then finishes
    worker.stop()
    gate.release.set()
    # Then it stops with that task processed and the other two still queued
    assert worker.join(10)
    assert worker.status().state == WorkerState.STOPPED and worker.status().processed == 1
    assert queue.stats()["depth"] == 2 and queue.stats()["in_flight"] == 0


def test_forced_stop_gives_the_in_flight_task_back_to_the_queue(queue: InMemoryTaskQueue) -> None:
    # Given a worker stuck in a handler
    gate = Gate()
    worker = run_worker(QueueWorker("w", queue, gate))
    queue.publish(Task("t", 1))
    gate.started.wait(10)
    assert worker.stuck_for() > 0
    # When it is stopped with force
    worker.stop(force=True)
    # Then the task is back in the queue at once
    assert queue.stats()["depth"] == 1 and queue.stats()["in_flight"] == 0
    gate.release.set()
    assert worker.join(10)
    # The late finish of the abandoned handler does not acknowledge the requeued task.
    assert queue.stats()["depth"] == 1


def test_concurrency_below_one_is_refused(queue: InMemoryTaskQueue) -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        QueueWorker("w", queue, print, concurrency=0)


class CountingQueue(InMemoryTaskQueue):
    """An in-memory queue that records how long each lease call waited while the queue was paused."""

    def __init__(self) -> None:
        super().__init__()
        self.paused_calls: list[tuple[float, float]] = []

    def consume_many(self, max_count: int, timeout: float | None = None) -> list[Task]:
        """Lease as usual; while paused, note (timeout asked, seconds waited)."""
        paused, started = self.is_paused(), time.monotonic()
        leased = super().consume_many(max_count, timeout)
        if paused and not leased:
            self.paused_calls.append((timeout or 0.0, time.monotonic() - started))
        return leased


def test_a_worker_on_a_paused_queue_waits_stays_healthy_and_resumes() -> None:
    """Given a paused queue, then its worker leases nothing and each lease call waits its poll timeout.

    Health stays ok with the pause as its detail (a pause is meant); after resume the task is handled.
    """
    queue = CountingQueue()
    handled = []
    queue.pause()
    worker = run_worker(QueueWorker("w", queue, lambda task: handled.append(task.payload), poll_timeout=0.1))
    queue.publish(Task("t", "after resume"))
    # Two more empty lease calls: at least one began after the task was there to lease.
    seen = len(queue.paused_calls)
    wait_for(lambda: len(queue.paused_calls) >= seen + 2, message="the worker to poll the paused queue")
    assert handled == []
    assert all(waited >= asked > 0 for asked, waited in queue.paused_calls), queue.paused_calls
    health = worker.health()
    assert health.status == "ok" and "paused" in health.detail
    queue.resume()
    wait_for(lambda: handled == ["after resume"], message="the task to be handled after resume")
    assert worker.health().status == "ok"
    stop(worker)


class LeaseSizes(InMemoryTaskQueue):
    """Records how many tasks each lease asked for."""

    def __init__(self) -> None:
        super().__init__(maxsize=0)
        self.asked: list[int] = []

    def consume_many(self, max_count: int, timeout: float | None = None) -> list[Task]:
        """Note the lease size, then lease."""
        self.asked.append(max_count)
        return super().consume_many(max_count, timeout)


def test_quick_handlers_lease_in_batches_and_one_slow_handler_among_them_does_not_end_that() -> None:
    """Given quick handlers with one that stalls (as a GIL switch or page fault would), then leases stay batched."""
    queue = LeaseSizes()
    for n in range(300):
        queue.publish(Task("job", n))
    worker = run_worker(QueueWorker("w", queue, lambda task: time.sleep(0.02) if task.payload == 150 else None,
                                    prefetch=16))
    assert queue.wait_empty(30)
    stop(worker)

    assert queue.asked[0] == 1  # handlers are not assumed quick before they ran
    assert 16 in queue.asked
    after_stall = queue.asked[queue.asked.index(16):]
    assert set(after_stall[:-1]) == {16}  # the last lease is the one the stop interrupted


def test_handlers_that_turn_slow_make_a_thread_give_back_its_batch_and_lease_one_at_a_time() -> None:
    """Given quick tasks then slow ones, when handlers slow down, then leases drop to one and nothing is lost."""
    queue = LeaseSizes()
    for n in range(200):
        queue.publish(Task("job", n))
    for n in range(200, 260):
        queue.publish(Task("slow", n))
    handled: list[int] = []

    def handle(task: Task) -> None:
        if task.name == "slow":
            time.sleep(0.01)
        handled.append(task.payload)

    worker = run_worker(QueueWorker("w", queue, handle, prefetch=16))
    assert queue.wait_empty(60)
    stop(worker)

    assert sorted(handled) == list(range(260))  # given-back tasks ran once, later
    assert 16 in queue.asked and queue.asked[-3:] == [1, 1, 1]
    assert queue.stats()["acked"] == 260
