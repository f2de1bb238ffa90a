"""PostgresTaskQueue when PostgreSQL goes away: clear errors, degraded health, and recovery by itself."""

from __future__ import annotations

import threading

import pytest

from plba import QueueWorker
from plba.contracts import Task
from plba.errors import QueueUnavailableError
from plba.queue.postgres import PostgresTaskQueue
from tests.helpers import wait_for


def test_given_a_running_worker_when_postgres_restarts_then_health_degrades_and_it_recovers_by_itself(own_postgres):
    """Given a worker, when PostgreSQL stops, then its health drops; when it is back, then tasks flow again."""
    url = own_postgres.create_database("outage")
    queue = PostgresTaskQueue("outage", url, visibility_timeout=5, socket_timeout=1, poll_interval=0.2)
    handled, lock = [], threading.Lock()

    def handle(task: Task) -> None:
        with lock:
            handled.append(task.payload)

    worker = QueueWorker("outage", queue, handle, concurrency=2, poll_timeout=0.2)
    worker.start()
    try:
        queue.publish(Task("n", "before"))
        wait_for(lambda: "before" in handled, message="the first task")
        wait_for(lambda: queue.stats()["listening"], message="the queue to listen")

        own_postgres.stop()
        wait_for(lambda: worker.health().status != "ok", timeout=30, message="the worker to notice the outage")
        assert "queue unavailable" in worker.health().detail and "'outage'" in worker.health().detail
        with pytest.raises(QueueUnavailableError, match="PostgreSQL at postgresql://postgres@127.0.0.1"):
            queue.publish(Task("n", "refused"))

        own_postgres.start()
        wait_for(lambda: worker.health().status == "ok", timeout=30, message="the worker to recover")
        queue.publish(Task("n", "after"))
        wait_for(lambda: "after" in handled, timeout=30, message="a task after the outage")
        wait_for(lambda: queue.stats()["listening"], timeout=30, message="the queue to listen again")
    finally:
        worker.stop()
        worker.join(timeout=10)
        queue.close()
    assert handled == ["before", "after"]


def test_given_tasks_waiting_when_postgres_restarts_then_none_is_lost(own_postgres):
    """Given tasks in the table, when PostgreSQL restarts, then the same queue object delivers every one."""
    url = own_postgres.create_database("survivors")
    queue = PostgresTaskQueue("survivors", url, socket_timeout=1)
    try:
        queue.publish_many([Task("n", i) for i in range(3)])
        own_postgres.restart()
        got = []
        wait_for(lambda: _collect(queue, got) == 3, timeout=30, message="the three tasks after the restart")
        assert sorted(task.payload for task in got) == [0, 1, 2]
    finally:
        queue.close()


def test_given_acks_made_while_postgres_is_down_then_they_are_sent_when_it_is_back(own_postgres):
    """Given tasks acked and nacked during an outage, then once PostgreSQL is back none of them is delivered again."""
    url = own_postgres.create_database("settle")
    queue = PostgresTaskQueue("settle", url, socket_timeout=1, visibility_timeout=30)
    try:
        queue.publish_many([Task("n", "done"), Task("n", "dead")])
        done, dead = queue.consume(timeout=5), queue.consume(timeout=5)
        own_postgres.stop()
        queue.ack(done)
        queue.dead_letter(dead, "ValueError: bad")
        own_postgres.start()
        wait_for(lambda: _stats_or_none(queue) == (0, 0, 1), timeout=30, message="the kept results to be sent")
    finally:
        queue.close()


def _collect(queue: PostgresTaskQueue, got: list[Task]) -> int:
    try:
        task = queue.consume(timeout=0.5)
    except QueueUnavailableError:
        return len(got)
    if task is not None:
        got.append(task)
        queue.ack(task)
    return len(got)


def _stats_or_none(queue: PostgresTaskQueue) -> tuple[int, int, int] | None:
    try:
        stats = queue.stats()
    except QueueUnavailableError:
        return None
    return stats["depth"], stats["in_flight"], stats["dead"]
