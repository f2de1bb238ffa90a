"""The OpenTelemetry transport (the `otel` extra): real OTel spans with PLBA's ids, parents, events and errors."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from plba import Task
from plba.errors import ConfigError
from plba.queue import InMemoryTaskQueue
from plba.tracing import TraceService, build_transport
from plba.tracing.otel import OtelTraceTransport, default_exporter
from tests.tracing.test_transports import Settings


class FailingExporter(SpanExporter):
    """An exporter whose backend is down."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Fail."""
        raise ConnectionError("collector down")


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """Trace id, span id and parent span id of an OTel span, as PLBA writes them."""
    parent = f"{span.parent.span_id:016x}" if span.parent else None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


@pytest.fixture
def exported() -> InMemorySpanExporter:
    """Where the transport's spans end up."""
    return InMemorySpanExporter()


@pytest.fixture
def otel_traces(exported: InMemorySpanExporter) -> TraceService:
    """A trace service exporting synchronously into `exported`."""
    return TraceService(OtelTraceTransport(exported, batch=False))


def test_given_a_trace_with_a_child_when_exported_then_otel_spans_keep_the_ids_and_the_parent_link(
        otel_traces: TraceService, exported: InMemorySpanExporter) -> None:
    """Given a trace and a nested span, when exported, then OTel ids equal PLBA ids and the child points at the root."""
    with otel_traces.trace("job.discovered", n=3) as root, otel_traces.span("parse") as child:
        pass

    spans = {span.name: span for span in exported.get_finished_spans()}
    assert hex_ids(spans["job.discovered"]) == (root.context.trace_id, root.context.span_id, None)
    assert hex_ids(spans["parse"]) == (root.context.trace_id, child.context.span_id, root.context.span_id)
    assert spans["job.discovered"].attributes == {"n": 3}
    assert spans["parse"].start_time >= spans["job.discovered"].start_time
    assert spans["parse"].end_time <= spans["job.discovered"].end_time


def test_given_messages_and_an_error_when_exported_then_they_are_events_and_an_error_status(
        otel_traces: TraceService, exported: InMemorySpanExporter) -> None:
    """Given trace messages and a raised error, when exported, then events carry them and the status is ERROR."""
    with pytest.raises(ValueError), otel_traces.trace("store"):
        otel_traces.message("order priced", total=12.5, lines=[1, 2])
        raise ValueError("database locked")

    (span,) = exported.get_finished_spans()
    (event,) = span.events
    assert event.name == "order priced" and dict(event.attributes) == {"total": 12.5, "lines": (1, 2)}
    assert span.start_time <= event.timestamp <= span.end_time
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "ValueError: database locked"


def test_given_attributes_otel_cannot_hold_when_exported_then_they_travel_as_json_text(
        otel_traces: TraceService, exported: InMemorySpanExporter) -> None:
    """Given dict, mixed-list and None attributes, when exported, then dicts and lists are JSON and None dropped."""
    with otel_traces.trace("job", order={"sku": "A1"}, mixed=[1, "a"], empty=None):
        pass

    (span,) = exported.get_finished_spans()
    assert dict(span.attributes) == {"order": '{"sku": "A1"}', "mixed": '[1, "a"]'}


def test_given_a_task_resumed_from_queue_metadata_when_exported_then_its_parent_is_the_producer_span(
        otel_traces: TraceService, exported: InMemorySpanExporter) -> None:
    """Given a task published in a trace, when a consumer resumes it, then the OTel span is a child of the producer."""
    queue = InMemoryTaskQueue()
    with otel_traces.trace("job.discovered") as root:
        queue.publish(Task("job", {}))
    task = queue.consume(0)
    with otel_traces.resume(task.metadata, "task job") as consumer:
        pass

    spans = {span.name: span for span in exported.get_finished_spans()}
    assert hex_ids(spans["task job"]) == (root.context.trace_id, consumer.context.span_id, root.context.span_id)


def test_given_the_batching_default_when_closed_then_every_span_has_been_exported(
        exported: InMemorySpanExporter) -> None:
    """Given a batching transport, when the service closes, then all spans are flushed to the exporter."""
    traces = TraceService(OtelTraceTransport(exported))
    for n in range(20):
        with traces.trace("job", n=n):
            pass
    traces.close()

    assert sorted(span.attributes["n"] for span in exported.get_finished_spans()) == list(range(20))


def test_given_an_exporter_that_fails_when_spans_are_exported_then_the_service_health_is_degraded() -> None:
    """Given a backend that is down, when a span is exported, then tracing health says export is failing."""
    traces = TraceService(OtelTraceTransport(FailingExporter(), batch=False))
    with traces.trace("job"):
        pass

    health = traces.health()
    assert health.status == "degraded" and "collector down" in health.detail


def test_given_otel_in_settings_when_the_transport_is_built_then_it_uses_the_named_exporter() -> None:
    """Given transport = otel and exporter = console, when built, then an OTel transport exporting to the console."""
    transport = build_transport(Settings(platform={"tracing": {"transport": "otel", "exporter": "console"}}))
    try:
        assert isinstance(transport, OtelTraceTransport)
        assert isinstance(transport.exporter.inner, ConsoleSpanExporter)
    finally:
        transport.close()


def test_given_an_unknown_exporter_name_when_chosen_then_a_config_error_names_the_key() -> None:
    """Given exporter = "fax", when chosen, then ConfigError names platform.tracing.exporter."""
    with pytest.raises(ConfigError, match="platform.tracing.exporter"):
        default_exporter("fax")
