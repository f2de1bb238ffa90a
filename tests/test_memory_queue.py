"""InMemoryTaskQueue: leases, acks, delayed retries, dead letters, bounds."""

from __future__ import annotations

import threading

import pytest

from plba.contracts import Task
from plba.errors import QueueFullError
from plba.queue import InMemoryTaskQueue
from plba.tracing import TraceService
from tests.helpers import wait_for


def test_a_published_task_is_leased_once_and_gone_after_ack() -> None:
    # Given a queue with one task
    queue = InMemoryTaskQueue()
    queue.publish(Task("t", {"n": 1}))
    # When it is consumed and acknowledged
    task = queue.consume(timeout=1)
    queue.ack(task)
    # Then it carried one attempt and is never delivered again
    assert task.payload == {"n": 1} and task.attempts == 1
    assert queue.consume(timeout=0.01) is None
    assert queue.stats()["acked"] == 1 and queue.stats()["in_flight"] == 0


def test_a_nacked_task_with_a_delay_comes_back_after_the_delay_with_its_attempt_counted() -> None:
    # Given a leased task
    queue = InMemoryTaskQueue()
    queue.publish(Task("t", "x"))
    first = queue.consume(timeout=1)
    # When it is nacked with a delay
    queue.nack(first, retry_delay=0.2)
    # Then it is delayed, not ready, and later delivered again as attempt two
    assert queue.stats()["delayed"] == 1 and queue.stats()["depth"] == 0
    again = queue.consume(timeout=5)
    assert again.id == first.id and again.attempts == 2


def test_a_released_task_goes_back_to_the_front_without_counting_an_attempt() -> None:
    queue = InMemoryTaskQueue()
    queue.publish(Task("t", 1))
    queue.publish(Task("t", 2))
    task = queue.consume(timeout=1)
    queue.release(task)
    again = queue.consume(timeout=1)
    assert again.payload == 1 and again.attempts == 1


def test_a_dead_lettered_task_keeps_its_error() -> None:
    queue = InMemoryTaskQueue()
    queue.publish(Task("t", 1))
    task = queue.consume(timeout=1)
    queue.dead_letter(task, "ValueError: bad")
    assert queue.stats()["dead"] == 1
    assert queue.list_dead().tasks[0].metadata["error"] == "ValueError: bad"


def test_publishing_to_a_full_queue_waits_then_raises_a_clear_error() -> None:
    # Given a queue bounded at one task that is full
    queue = InMemoryTaskQueue(maxsize=1, name="orders")
    queue.publish(Task("t", 1))
    # When another publish finds no room within its timeout
    with pytest.raises(QueueFullError, match="queue 'orders' is full"):
        queue.publish(Task("t", 2), timeout=0.05)
    # Then nothing was added
    assert queue.stats()["depth"] == 1


def test_a_blocked_publish_proceeds_once_a_consumer_makes_room() -> None:
    queue = InMemoryTaskQueue(maxsize=1)
    queue.publish(Task("t", 1))
    publisher = threading.Thread(target=queue.publish, args=(Task("t", 2), 10))
    publisher.start()
    queue.ack(queue.consume(timeout=1))
    publisher.join(10)
    assert not publisher.is_alive() and queue.stats()["depth"] == 1


def test_interrupt_wakes_a_blocked_consumer() -> None:
    # Given a consumer blocked on an empty queue with no timeout
    queue = InMemoryTaskQueue()
    results = []
    consumer = threading.Thread(target=lambda: results.append(queue.consume()))
    consumer.start()
    wait_for(lambda: consumer.is_alive(), message="consumer started")
    # When the queue is interrupted
    queue.interrupt()
    consumer.join(10)
    # Then the consumer returned None
    assert results == [None]


def test_a_task_published_inside_a_trace_carries_its_traceparent() -> None:
    traces = TraceService()
    queue = InMemoryTaskQueue()
    with traces.trace("found") as span:
        queue.publish(Task("t", 1))
    task = queue.consume(timeout=1)
    assert task.metadata["traceparent"] == f"00-{span.context.trace_id}-{span.context.span_id}-01"


def test_wait_empty_returns_once_everything_is_acknowledged() -> None:
    queue = InMemoryTaskQueue()
    queue.publish(Task("t", 1))
    assert queue.wait_empty(0.01) is False
    queue.ack(queue.consume(timeout=1))
    assert queue.wait_empty(1) is True


def test_task_round_trips_through_its_dict_form() -> None:
    task = Task("t", {"a": [1, 2]}, {"attempts": 2})
    again = Task.from_dict(task.to_dict())
    assert again == task and again.attempts == 2
