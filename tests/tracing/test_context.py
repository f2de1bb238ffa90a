"""The trace context: W3C traceparent form, injection, and keeping it across threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from plba.tracing import SpanContext, TraceService, current_span, extract, inject, use_span
from plba.tracing.context import wrap


def test_given_a_span_when_written_as_traceparent_then_it_reads_back_with_the_same_ids() -> None:
    """Given a span, when turned into a traceparent and parsed, then trace and span ids survive."""
    span = SpanContext.new_root().child()

    parsed = SpanContext.from_traceparent(span.traceparent)

    assert span.traceparent == f"00-{span.trace_id}-{span.span_id}-01"
    assert (parsed.trace_id, parsed.span_id) == (span.trace_id, span.span_id)


def test_given_malformed_traceparents_when_extracted_then_there_is_no_context() -> None:
    """Given missing, malformed or all-zero values, when extracted, then None (a new trace starts)."""
    zeros = "00-" + "0" * 32 + "-" + "1" * 16 + "-01"
    for metadata in (None, {}, {"traceparent": 42}, {"traceparent": "00-abc-def-01"}, {"traceparent": zeros}):
        assert extract(metadata) is None


def test_given_a_current_span_when_injected_then_metadata_carries_it_but_an_existing_one_is_kept() -> None:
    """Given a current span, when injected, then metadata gets it, unless it already carries a trace."""
    span, other = SpanContext.new_root(), SpanContext.new_root()
    fresh, carried = {}, {"traceparent": other.traceparent}

    with use_span(span):
        inject(fresh)
        inject(carried)

    assert fresh == {"traceparent": span.traceparent}
    assert carried == {"traceparent": other.traceparent}


def test_given_no_current_span_when_injected_then_metadata_is_untouched() -> None:
    """Given no trace, when injected, then nothing is added."""
    metadata: dict = {}
    inject(metadata)
    assert metadata == {}


def test_given_a_trace_when_a_plain_thread_pool_runs_work_then_the_trace_is_lost_which_is_why_wrap_exists() -> None:
    """Given a trace, when a ThreadPoolExecutor runs a bare function, then it sees no span (threads start empty)."""
    with ThreadPoolExecutor(2) as pool, use_span(SpanContext.new_root()):
        assert pool.submit(current_span).result() is None


def test_given_a_trace_when_wrapped_work_runs_in_a_thread_pool_then_every_call_sees_the_trace() -> None:
    """Given a trace, when `wrap(fn)` is mapped over many items in a pool at once, then every call keeps it."""
    span = SpanContext.new_root()
    barrier = threading.Barrier(4)

    def trace_of(_: int) -> str:
        barrier.wait()  # four calls of the same wrapped function run in parallel
        return current_span().trace_id

    with ThreadPoolExecutor(4) as pool, use_span(span):
        seen = list(pool.map(wrap(trace_of), range(4)))

    assert seen == [span.trace_id] * 4


def test_given_wrapped_work_in_a_pool_when_it_opens_spans_and_messages_then_they_nest_in_the_caller_span(
        traces: TraceService, records) -> None:
    """Given a trace, when pool work uses traces.span and traces.message, then spans are children of the caller."""

    def step(n: int) -> None:
        with traces.span("step", n=n):
            traces.message(f"step {n} done")

    with traces.trace("batch") as root, ThreadPoolExecutor(3) as pool:
        list(pool.map(wrap(step), range(3)))

    steps = records.named("step")
    assert len(steps) == 3
    assert {r["trace_id"] for r in steps} == {root.context.trace_id}
    assert {r["parent_id"] for r in steps} == {root.context.span_id}
    assert sorted(m["message"] for r in steps for m in r["messages"]) == ["step 0 done", "step 1 done", "step 2 done"]


def test_given_wrapped_work_when_it_changes_the_context_then_the_caller_context_is_unchanged() -> None:
    """Given a wrapped function that sets a span, when it returns, then the caller's span is still current."""
    outer = SpanContext.new_root()

    def replace() -> str:
        with use_span(SpanContext.new_root()) as inner:
            return inner.trace_id

    with use_span(outer):
        inner_id = wrap(replace)()
        assert current_span() == outer
    assert inner_id != outer.trace_id
