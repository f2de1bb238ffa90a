"""RedisTaskQueue when Redis is unreachable: clear errors at start, and recovery after a restart."""

from __future__ import annotations

import re
import threading

import pytest

from plba import QueueWorker
from plba.contracts import Task
from plba.errors import QueueUnavailableError
from plba.masking import MASK
from plba.queue import build_queue
from plba.queue.redis import RedisTaskQueue
from tests.helpers import wait_for
from tests.redis.server import free_port


def test_given_nothing_listening_when_connecting_the_queue_then_the_error_names_queue_and_url_but_no_password():
    """Given a URL where nothing listens, then building works but connecting fails naming queue and URL, masked."""
    port = free_port()
    settings = {"platform.queues.orders": {"backend": "redis", "url": f"redis://app:s3cret@127.0.0.1:{port}/0"}}
    queue = build_queue("orders", settings)
    with pytest.raises(QueueUnavailableError) as error:
        queue.connect()
    queue.close()
    message = str(error.value)
    assert "'orders'" in message and f"redis://app:{MASK}@127.0.0.1:{port}/0" in message
    assert "s3cret" not in message


def test_given_a_url_that_is_not_redis_then_the_error_is_clear():
    """Given an http:// URL, then building the queue fails naming the queue and the URL."""
    with pytest.raises(QueueUnavailableError, match=rf"queue 'orders': bad Redis URL http://x:{re.escape(MASK)}@host"):
        RedisTaskQueue.from_settings("orders", {"url": "http://x:pw@host/0"})


def test_given_tasks_in_a_persistent_redis_when_it_restarts_then_none_is_lost(persistent_redis):
    """Given tasks waiting in Redis, when Redis restarts on the same port, then the same queue object delivers them."""
    queue = RedisTaskQueue("survivors", persistent_redis.url)
    try:
        queue.publish_many([Task("n", i) for i in range(3)])
        persistent_redis.stop()
        with pytest.raises(QueueUnavailableError, match="'survivors'"):
            queue.consume(timeout=0.1)
        persistent_redis.start()

        got = [queue.consume(timeout=5) for _ in range(3)]
        assert sorted(t.payload for t in got) == [0, 1, 2]
    finally:
        queue.close()


def test_given_a_running_worker_when_redis_goes_away_and_comes_back_then_it_recovers_by_itself(persistent_redis):
    """Given a worker, when Redis stops, then its health drops; when Redis is back, then it handles tasks again."""
    queue = RedisTaskQueue("outage", persistent_redis.url, visibility_timeout=2)
    handled, lock = [], threading.Lock()

    def handle(task):
        with lock:
            handled.append(task.payload)

    worker = QueueWorker("outage", queue, handle, concurrency=2, poll_timeout=0.2)
    worker.start()
    try:
        queue.publish(Task("n", "before"))
        wait_for(lambda: "before" in handled, message="the first task")

        persistent_redis.stop()
        wait_for(lambda: worker.health().status != "ok", message="the worker to notice the outage")
        assert "queue unavailable" in worker.health().detail
        with pytest.raises(QueueUnavailableError):
            queue.publish(Task("n", "lost"))

        persistent_redis.start()
        wait_for(lambda: worker.health().status == "ok", timeout=20, message="the worker to recover")
        queue.publish(Task("n", "after"))
        wait_for(lambda: "after" in handled, timeout=20, message="a task after the outage")
    finally:
        worker.stop()
        worker.join(timeout=10)
        queue.close()
    assert handled == ["before", "after"]


def test_given_redis_restarted_empty_then_the_queue_recreates_its_group_and_carries_on(own_redis):
    """Given a Redis that lost everything in a restart, when publishing and consuming again, then both work."""
    queue = RedisTaskQueue("amnesia", own_redis.url)
    try:
        queue.publish(Task("n", "gone"))
        own_redis.stop()
        own_redis.start()
        queue.publish(Task("n", "new"))

        task = queue.consume(timeout=5)
        assert task is not None and task.payload == "new"
        queue.ack(task)
        assert queue.stats()["pending"] == 0
    finally:
        queue.close()
