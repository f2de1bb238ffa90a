"""RedisTaskQueue on a real redis-server: delivery, acks, retries, leases, dead letters, stats, tracing."""

from __future__ import annotations

import threading

import pytest
import redis

from plba.contracts import Task
from plba.errors import ConfigError
from plba.queue import build_queue
from plba.queue.redis import RedisTaskQueue
from plba.tracing.context import SpanContext, use_span
from tests.helpers import wait_for
from tests.redis.support import crash


def test_given_a_published_task_when_consumed_and_acked_then_it_is_gone_for_every_consumer(make_queue, redis_server):
    """Given a published task, when a consumer takes and acks it, then no consumer ever sees it again."""
    queue = make_queue()
    other = make_queue(visibility_timeout=0.3)
    queue.publish(Task("greet", {"who": "world"}))

    task = queue.consume(timeout=5)
    assert task is not None and task.name == "greet" and task.payload == {"who": "world"}
    assert task.attempts == 1
    queue.ack(task)

    raw = redis.Redis.from_url(redis_server.url)
    wait_for(lambda: raw.xlen(queue.keys.stream) == 0, message="the batched ack to reach Redis on its own")
    raw.close()
    assert other.consume(timeout=1.0) is None
    assert (queue.stats()["depth"], queue.stats()["pending"]) == (0, 0)


def test_given_many_tasks_published_in_one_batch_then_they_are_consumed_in_order(make_queue):
    """Given 250 tasks published with publish_many, when consumed, then they come in publishing order."""
    queue = make_queue(prefetch=7)
    queue.publish_many([Task("n", i) for i in range(250)])

    seen = []
    while len(seen) < 250:
        task = queue.consume(timeout=5)
        assert task is not None
        seen.append(task.payload)
        queue.ack(task)
    assert seen == list(range(250))


def test_given_an_empty_queue_when_consuming_with_a_timeout_then_none_comes_back(make_queue):
    """Given an empty queue, when consume waits briefly, then it returns None."""
    assert make_queue().consume(timeout=0.2) is None
    assert make_queue().consume(timeout=0) is None


def test_given_a_nacked_task_with_a_delay_then_it_is_delivered_again_only_after_the_delay(make_queue):
    """Given a task nacked with a 2 s delay, then it waits in the delayed set and is delivered again after it."""
    queue = make_queue()
    queue.publish(Task("retry-me", 1))
    first = queue.consume(timeout=5)
    queue.nack(first, retry_delay=2.0)

    assert queue.stats()["delayed"] == 1
    assert queue.consume(timeout=0.3) is None
    again = queue.consume(timeout=10)
    assert again is not None and again.id == first.id
    assert again.attempts == 2
    assert queue.stats()["delayed"] == 0


def test_given_a_nacked_task_without_a_delay_then_it_is_delivered_again_at_once(make_queue):
    """Given a task nacked without delay, when consuming again, then it comes back with its attempt counted."""
    queue = make_queue()
    queue.publish(Task("retry-me", 1))
    queue.nack(queue.consume(timeout=5))
    again = queue.consume(timeout=5)
    assert again is not None and again.attempts == 2


def test_given_an_abandoned_lease_then_another_consumer_gets_the_task_after_the_visibility_timeout(make_queue):
    """Given a consumer that took a task and died, then another consumer receives it after the visibility timeout."""
    first = make_queue(visibility_timeout=0.5)
    second = make_queue(visibility_timeout=0.5)
    first.publish(Task("orphan", "x"))
    taken = first.consume(timeout=5)
    crash(first)

    redelivered = second.consume(timeout=10)
    assert redelivered is not None and redelivered.id == taken.id
    assert redelivered.attempts == 2
    second.ack(redelivered)


def test_given_a_long_handler_that_is_alive_then_its_lease_is_extended_and_nobody_else_gets_the_task(make_queue):
    """Given a task held by a live consumer for three visibility timeouts, then no other consumer receives it."""
    holder = make_queue(visibility_timeout=1.0)
    other = make_queue(visibility_timeout=1.0)
    holder.publish(Task("slow", None))
    task = holder.consume(timeout=5)

    assert other.consume(timeout=3.0) is None
    holder.ack(task)
    wait_for(lambda: holder.stats()["pending"] == 0, message="the ack")
    assert other.consume(timeout=0.5) is None


def test_given_consumers_that_crash_then_every_delivery_is_counted_in_redis(make_queue):
    """Given three consumers that each take the task and die, then the fourth sees it on its fourth attempt."""
    queue = make_queue(visibility_timeout=0.3)
    queue.publish(Task("crashy", None))
    for attempt in (1, 2, 3):
        consumer = make_queue(visibility_timeout=0.3)
        task = consumer.consume(timeout=10)
        assert task is not None and task.attempts == attempt
        crash(consumer)
    last = make_queue(visibility_timeout=0.3).consume(timeout=10)
    assert last is not None and last.attempts == 4


def test_given_a_leased_task_when_dead_lettered_then_it_is_kept_with_its_error_and_attempts(make_queue):
    """Given a leased task, when dead-lettered, then the dead-letter stream holds it with error and attempts."""
    queue = make_queue()
    queue.publish(Task("doomed", {"n": 1}))
    task = queue.consume(timeout=5)
    queue.dead_letter(task, "ValueError: nope")

    dead = queue.list_dead().tasks
    assert [d.id for d in dead] == [task.id]
    assert dead[0].metadata["error"] == "ValueError: nope"
    assert dead[0].metadata["attempts"] == 1
    assert queue.stats()["dead"] == 1 and queue.stats()["pending"] == 0


def test_given_a_released_task_then_it_comes_back_at_once_without_an_attempt_counted(make_queue):
    """Given a leased task that never started, when released, then another consumer gets it still at attempt 1."""
    queue = make_queue()
    other = make_queue()
    queue.publish(Task("unstarted", None))
    queue.release(queue.consume(timeout=5))

    again = other.consume(timeout=5)
    assert again is not None and again.attempts == 1


def test_given_a_consumer_blocked_on_an_empty_queue_when_interrupted_then_it_returns_none(make_queue):
    """Given a consumer waiting without a timeout, when the queue is interrupted, then consume returns None."""
    queue = make_queue()
    results = []
    waiter = threading.Thread(target=lambda: results.append(queue.consume()))
    waiter.start()
    wait_for(lambda: queue._keeper.started, message="the consumer to start")
    queue.interrupt()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and results == [None]


def test_given_buffered_tasks_when_interrupted_then_other_consumers_get_them_at_once(make_queue):
    """Given a consumer that read five tasks in one batch and started one, when interrupted, then the rest go back."""
    queue = make_queue(prefetch=10)
    other = make_queue()
    queue.publish_many([Task("n", i) for i in range(5)])
    started = queue.consume(timeout=5)
    queue.interrupt()

    rest = [other.consume(timeout=5) for _ in range(4)]
    assert sorted(t.payload for t in rest) == [i for i in range(5) if i != started.payload]
    assert all(t.attempts == 1 for t in rest)


def test_given_queue_activity_then_stats_report_depth_pending_delayed_dead_and_consumers(make_queue):
    """Given waiting, leased, delayed and dead tasks, then stats count each of them."""
    queue = make_queue(prefetch=1)
    queue.publish_many([Task("n", i) for i in range(5)])
    leased = [queue.consume(timeout=5) for _ in range(3)]
    queue.nack(leased[0], retry_delay=60)
    queue.dead_letter(leased[1], "boom")

    stats = queue.stats()
    assert stats["backend"] == "redis"
    assert (stats["depth"], stats["pending"], stats["in_flight"]) == (2, 1, 1)
    assert (stats["delayed"], stats["dead"], stats["consumers"]) == (1, 1, 1)


def test_given_a_current_trace_when_publishing_then_the_consumed_task_carries_its_traceparent(make_queue):
    """Given a trace current while publishing, then the consumed task carries the same W3C traceparent."""
    queue = make_queue()
    span = SpanContext.new_root()
    with use_span(span):
        queue.publish(Task("traced", None))
    task = queue.consume(timeout=5)
    assert task.metadata["traceparent"] == span.traceparent
    assert SpanContext.from_traceparent(task.metadata["traceparent"]).trace_id == span.trace_id


def test_given_a_redis_table_in_settings_then_build_queue_makes_a_redis_queue(redis_server):
    """Given `[platform.queues.orders]` with backend redis, then build_queue returns a RedisTaskQueue from it."""
    table = {"backend": "redis", "url": redis_server.url, "visibility_timeout": 7, "max_attempts": 3,
             "retry_delay": 0.5, "prefetch": 4}
    queue = build_queue("orders-settings", {"platform.queues.orders-settings": table})
    try:
        assert isinstance(queue, RedisTaskQueue)
        assert (queue.visibility_timeout, queue.max_attempts, queue.prefetch) == (7, 3, 4)
        assert queue.retry_backoff.base == 0.5
    finally:
        queue.close()


def test_given_bad_numbers_in_the_table_then_every_problem_is_named():
    """Given a table with two bad values, then one ConfigError names both keys."""
    with pytest.raises(ConfigError) as error:
        RedisTaskQueue.from_settings("orders", {"visibility_timeout": 0, "prefetch": "many"})
    assert "platform.queues.orders.visibility_timeout" in str(error.value)
    assert "platform.queues.orders.prefetch" in str(error.value)


def test_given_an_entry_that_is_not_a_task_then_it_is_dead_lettered_not_dropped(make_queue, redis_server):
    """Given a stream entry someone wrote by hand, when consuming, then it goes to the dead letters with a reason."""
    queue = make_queue()
    raw = redis.Redis.from_url(redis_server.url)
    raw.xadd(queue.keys.stream, {"junk": "yes"})
    raw.close()
    queue.publish(Task("real", 1))

    task = queue.consume(timeout=5)
    assert task is not None and task.payload == 1
    dead = queue.list_dead().tasks
    assert [d.name for d in dead] == ["malformed"]
    assert dead[0].payload["fields"] == {"junk": "yes"} and "not a task" in dead[0].metadata["error"]


def test_given_the_dead_letter_cap_reached_then_dropping_the_oldest_is_logged(make_queue, caplog):
    """Given dead_max = 1, when a second task dies, then the oldest dead letter is trimmed and a warning says so."""
    queue = make_queue(dead_max=1)
    for n in range(2):
        queue.publish(Task("t", n))
    for _ in range(2):
        queue.dead_letter(queue.consume(timeout=5), "RuntimeError: bad")
    assert queue.stats()["dead"] == 1
    assert any("more than 1 dead letters; dropped the 1 oldest" in record.getMessage() for record in caplog.records)
