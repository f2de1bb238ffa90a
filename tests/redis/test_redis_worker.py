"""QueueWorker over RedisTaskQueue: end to end, retries, dead letters, and processes killed mid-task."""

from __future__ import annotations

import select
import subprocess
import sys
import textwrap
import threading
import uuid

from plba import QueueWorker
from plba.backoff import Backoff
from plba.contracts import Task
from plba.queue.redis import RedisTaskQueue
from plba.tracing.context import SpanContext, current_span, use_span
from tests.helpers import REPO, wait_for

FAST_RETRIES = Backoff(base=0.01, cap=0.05)


def run_worker(queue, handler, **options) -> QueueWorker:
    """A started QueueWorker; the caller stops it."""
    worker = QueueWorker("redis-test", queue, handler, **options)
    worker.start()
    return worker


def stop(worker: QueueWorker) -> None:
    worker.stop()
    assert worker.join(timeout=10)


def test_given_a_worker_with_four_threads_then_every_task_is_handled_and_acked(make_queue):
    """Given 300 tasks and a worker with concurrency 4, then each task is handled and the queue ends empty."""
    queue = make_queue()
    handled, lock = [], threading.Lock()

    def handle(task):
        with lock:
            handled.append(task.payload)

    queue.publish_many([Task("n", i) for i in range(300)])
    worker = run_worker(queue, handle, concurrency=4)
    try:
        wait_for(lambda: len(handled) >= 300, timeout=30, message="300 tasks handled")
        wait_for(lambda: queue.stats()["pending"] == 0 and queue.stats()["depth"] == 0, message="an empty queue")
    finally:
        stop(worker)
    assert sorted(handled) == list(range(300))
    assert worker.status().processed == 300


def test_given_a_handler_that_always_fails_then_the_task_is_dead_lettered_after_max_attempts(make_queue):
    """Given a handler that raises, then the task is tried max_attempts times and dead-lettered with its error."""
    queue = make_queue(max_attempts=3, retry_backoff=FAST_RETRIES)
    calls = []

    def handle(task):
        calls.append(task.attempts)
        raise RuntimeError("no stock")

    queue.publish(Task("order", {"sku": "A1"}))
    worker = run_worker(queue, handle)
    try:
        wait_for(lambda: queue.stats()["dead"] == 1, timeout=20, message="the dead letter")
    finally:
        stop(worker)
    assert calls == [1, 2, 3]
    dead = queue.list_dead().tasks[0]
    assert dead.metadata["error"] == "RuntimeError: no stock" and dead.metadata["attempts"] == 3


def test_given_a_trace_at_publish_then_the_handler_runs_inside_it(make_queue):
    """Given a task published inside a trace, then the handler sees the same trace id as current."""
    queue = make_queue()
    span = SpanContext.new_root()
    seen = []
    with use_span(span):
        queue.publish(Task("traced", None))
    worker = run_worker(queue, lambda task: seen.append(current_span().trace_id))
    try:
        wait_for(lambda: seen, message="the handler")
    finally:
        stop(worker)
    assert seen == [span.trace_id]


DOOMED_PROCESS = textwrap.dedent('''
    import sys, time
    from plba import QueueWorker
    from plba.queue.redis import RedisTaskQueue

    def handle(task):
        print(f"started attempt {task.attempts}", flush=True)
        time.sleep(120)

    queue = RedisTaskQueue(sys.argv[2], sys.argv[1], visibility_timeout=0.5)
    QueueWorker("doomed", queue, handle).start()
    time.sleep(120)
''')


def start_and_kill_mid_task(url: str, name: str) -> str:
    """Run a worker process until its handler starts, SIGKILL it, and return what it printed."""
    process = subprocess.Popen([sys.executable, "-c", DOOMED_PROCESS, url, name], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    try:
        # Bounded, so a process that never gets to the handler fails the test instead of hanging it.
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else "nothing within 30 s"
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
    return line.strip()


def test_given_processes_killed_mid_task_then_attempts_count_and_the_task_is_dead_lettered(make_queue, redis_server):
    """Given a task whose handler kills its process twice, then the next worker (max 2 attempts) dead-letters it."""
    queue = make_queue(visibility_timeout=0.5, max_attempts=2)
    queue.publish(Task("poison", None))

    assert start_and_kill_mid_task(redis_server.url, queue.name) == "started attempt 1"
    assert start_and_kill_mid_task(redis_server.url, queue.name) == "started attempt 2"

    handled = []
    worker = run_worker(queue, handled.append)
    try:
        wait_for(lambda: queue.stats()["dead"] == 1, timeout=20, message="the dead letter")
    finally:
        stop(worker)
    assert handled == []
    dead = queue.list_dead().tasks[0]
    assert dead.metadata["attempts"] == 3
    assert "never finished" in dead.metadata["error"]


class CountingQueue(RedisTaskQueue):
    """A Redis queue handle that counts the reads that leased nothing."""

    empty_reads = 0

    def consume(self, timeout: float | None = None) -> Task | None:
        """Consume as usual, counting None answers."""
        task = super().consume(timeout)
        if task is None:
            self.empty_reads += 1
        return task


def test_given_a_paused_queue_then_no_consumer_leases_and_resume_handles_each_task_once(redis_server):
    """Given two consumers (as two processes) with a worker each, when the queue is paused through one.

    Then neither handles a task published meanwhile, both stay healthy with the pause as the detail,
    and after resume every task is handled exactly once.
    """
    name = f"paused-{uuid.uuid4().hex[:8]}"
    queues = [CountingQueue(name, redis_server.url), CountingQueue(name, redis_server.url)]
    handled, lock = [], threading.Lock()

    def handle(task):
        with lock:
            handled.append(task.id)

    workers = [run_worker(queue, handle, poll_timeout=0.1) for queue in queues]
    try:
        queues[0].pause()
        tasks = [Task("t", n) for n in range(20)]
        for task in tasks:
            queues[1].publish(task)
        # Two more empty reads on each: at least one began after the tasks were there to lease.
        seen = [queue.empty_reads for queue in queues]
        wait_for(lambda: all(q.empty_reads >= n + 2 for q, n in zip(queues, seen, strict=True)),
                 message="both consumers to read the paused queue")
        assert handled == [] and queues[1].stats()["depth"] == 20 and queues[1].stats()["in_flight"] == 0
        assert all(w.health().status == "ok" and "paused" in w.health().detail for w in workers)
        queues[1].resume()
        wait_for(lambda: len(handled) == 20, message="every task handled after resume")
        assert sorted(handled) == sorted(task.id for task in tasks)
        assert all(worker.health().status == "ok" for worker in workers)
    finally:
        for worker in workers:
            stop(worker)
        for queue in queues:
            queue.close()
