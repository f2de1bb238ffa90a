"""Propagation through the in-memory queue with no business code involved: publish, resume, retry."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from plba import QueueWorker, Task
from plba.backoff import Backoff
from plba.queue import InMemoryTaskQueue
from plba.tracing import LogTraceTransport, TraceService, current_span, extract
from tests.helpers import wait_for

FAST_RETRY = Backoff(base=0.01, cap=0.02, jitter=0)


@pytest.fixture
def queue() -> InMemoryTaskQueue:
    """An unbounded in-memory queue."""
    return InMemoryTaskQueue(maxsize=0)


@pytest.fixture
def run_worker(queue: InMemoryTaskQueue) -> Iterator[Callable[..., QueueWorker]]:
    """Starts a QueueWorker on `queue` and stops it after the test."""
    started: list[QueueWorker] = []

    def start(handler, traces: TraceService | None, **options) -> QueueWorker:
        worker = QueueWorker("w", queue, handler, traces, retry_backoff=FAST_RETRY, poll_timeout=0.05, **options)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        worker.join(5)


def test_given_a_current_trace_when_a_task_is_published_then_its_metadata_carries_the_traceparent(
        traces: TraceService, queue: InMemoryTaskQueue) -> None:
    """Given a trace, when a task is published, then metadata["traceparent"] names the trace's current span."""
    with traces.trace("job.discovered") as root:
        queue.publish(Task("job", {"n": 1}))

    task = queue.consume(0)
    assert task.metadata["traceparent"] == root.context.traceparent


def test_given_a_traced_task_when_serialised_and_rebuilt_then_the_trace_context_survives(
        traces: TraceService, queue: InMemoryTaskQueue) -> None:
    """Given a published traced task, when it goes through to_dict, JSON and from_dict, then it carries the trace."""
    with traces.trace("job.discovered") as root:
        queue.publish(Task("job", {"n": 1}))
    task = queue.consume(0)

    rebuilt = Task.from_dict(json.loads(json.dumps(task.to_dict())))

    assert rebuilt.metadata == task.metadata
    assert extract(rebuilt.metadata).trace_id == root.context.trace_id


def test_given_a_traced_task_when_the_worker_runs_it_then_the_handler_is_inside_a_child_span_of_the_producer(
        traces: TraceService, records, queue: InMemoryTaskQueue, run_worker) -> None:
    """Given a task published in a trace, when a QueueWorker handles it, then the handler sees that trace."""
    seen = []
    run_worker(lambda task: seen.append(current_span()), traces)

    with traces.trace("job.discovered") as root:
        queue.publish(Task("job", {"n": 1}))

    wait_for(lambda: records.named("task job"), message="the task's span")
    (span,) = records.named("task job")
    assert seen[0].trace_id == root.context.trace_id
    assert (span["trace_id"], span["parent_id"]) == (root.context.trace_id, root.context.span_id)
    assert span["span_id"] == seen[0].span_id
    assert span["attributes"]["attempt"] == 1


def test_given_a_task_that_fails_once_when_it_is_retried_then_both_attempts_belong_to_the_same_trace(
        traces: TraceService, records, queue: InMemoryTaskQueue, run_worker) -> None:
    """Given a handler failing the first attempt, when retried, then both attempts are spans of the one trace."""

    def flaky(task: Task) -> None:
        if task.attempts == 1:
            raise RuntimeError("transient")

    run_worker(flaky, traces)
    with traces.trace("job.discovered") as root:
        queue.publish(Task("job", {}))

    wait_for(lambda: len(records.named("task job")) == 2, message="two attempts")
    first, second = sorted(records.named("task job"), key=lambda r: r["attributes"]["attempt"])
    assert {first["trace_id"], second["trace_id"]} == {root.context.trace_id}
    assert first["parent_id"] == second["parent_id"] == root.context.span_id
    assert first["error"] == "RuntimeError: transient" and second["error"] is None


def test_given_many_tasks_each_in_its_own_trace_when_handled_concurrently_then_no_trace_leaks_to_another(
        traces: TraceService, queue: InMemoryTaskQueue, run_worker) -> None:
    """Given 50 tasks each published in its own trace, when 4 threads handle them, then each sees its own."""
    expected, seen = {}, {}
    run_worker(lambda task: seen.__setitem__(task.payload, current_span().trace_id), traces, concurrency=4)

    for n in range(50):
        with traces.trace("job.discovered", n=n) as root:
            expected[n] = root.context.trace_id
            queue.publish(Task("job", n))

    wait_for(lambda: len(seen) == 50, message="50 tasks handled")
    assert seen == expected
    assert len(set(seen.values())) == 50


def test_given_a_worker_without_a_trace_service_when_it_runs_a_traced_task_then_logs_still_carry_the_trace(
        traces: TraceService, queue: InMemoryTaskQueue, run_worker, json_log) -> None:
    """Given traces=None on the worker, when a traced task runs, then its context is current for the handler."""
    run_worker(lambda task: logging.getLogger("acme").info("handling %s", task.payload), None)

    with traces.trace("job.discovered") as root:
        queue.publish(Task("job", "x"))

    (line,) = wait_for(lambda: json_log.messages("handling x"), message="the handler's log line")
    assert line["trace_id"] == root.context.trace_id


def test_given_the_log_transport_at_info_when_traced_tasks_run_then_their_logs_carry_the_trace_and_own_span_ids(
        queue: InMemoryTaskQueue, run_worker, json_log, caplog) -> None:
    """Given spans that go nowhere (log transport, INFO), when tasks run, then each logs the trace and its own span."""
    # At INFO whatever an earlier test left on the `plba` loggers.
    caplog.set_level(logging.INFO, logger="plba.traces")
    traces = TraceService(LogTraceTransport())
    assert traces.discards
    run_worker(lambda task: logging.getLogger("acme").info("handling %s", task.payload), traces)

    with traces.trace("job.discovered") as root:
        queue.publish(Task("job", "a"))
        queue.publish(Task("job", "b"))

    lines = [wait_for(lambda n=n: json_log.messages(f"handling {n}"), message=f"task {n} logged")[0] for n in "ab"]
    assert {line["trace_id"] for line in lines} == {root.context.trace_id}
    span_ids = {line["span_id"] for line in lines}
    assert len(span_ids) == 2 and root.context.span_id not in span_ids


def test_given_an_untraced_task_when_the_worker_runs_it_then_it_gets_a_trace_of_its_own(
        traces: TraceService, records, queue: InMemoryTaskQueue, run_worker) -> None:
    """Given a task published outside any trace, when handled, then its span starts a new trace."""
    run_worker(lambda task: None, traces)
    queue.publish(Task("job", {}))

    (span,) = wait_for(lambda: records.named("task job"), message="the task's span")
    assert span["parent_id"] is None and len(span["trace_id"]) == 32
