"""OpenTelemetry transport: each finished PLBA span becomes a real OTel span with the same ids (the `otel` extra)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode, TraceFlags

from plba.errors import ConfigError
from plba.tracing.transports import TraceTransport

EXPORTERS = ("auto", "console", "otlp")
_PRIMITIVES = (str, bool, int, float)


class OtelTraceTransport(TraceTransport):
    """Replays finished spans through an OTel SDK tracer of its own, then a SpanExporter.

    `exporter` defaults to OTLP when an OTLP exporter package is installed, else the console.
    `batch=False` exports synchronously (tests); the default batches in a background thread.
    """

    def __init__(self, exporter: SpanExporter | None = None, *, service_name: str = "plba", batch: bool = True) -> None:
        self.exporter = _WatchedExporter(exporter or default_exporter())
        self._ids = _RecordIds()
        # A provider of our own, never the global one: the host application may have its own.
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                        id_generator=self._ids)
        processor = BatchSpanProcessor(self.exporter) if batch else SimpleSpanProcessor(self.exporter)
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("plba")

    @classmethod
    def from_settings(cls, settings: Any) -> OtelTraceTransport:
        """Built from `platform.tracing.exporter` (auto, console, otlp) and `platform.tracing.service_name`."""
        name = str(settings.get("platform.tracing.exporter", "auto")).lower()
        return cls(default_exporter(name), service_name=str(settings.get("platform.tracing.service_name", "plba")))

    def emit(self, record: dict[str, Any]) -> None:
        """Create, fill and end one OTel span carrying the record's ids, times, attributes and messages."""
        trace_id, span_id = int(record["trace_id"], 16), int(record["span_id"], 16)
        self._ids.use(trace_id, span_id)
        span = self._tracer.start_span(
            record["name"],
            context=_parent_context(trace_id, record.get("parent_id")),
            kind=SpanKind.INTERNAL,
            attributes=_attributes(record.get("attributes")),
            start_time=_nanos(record["start"]),
        )
        for message in record.get("messages") or ():
            span.add_event(message["message"], _attributes(message.get("attributes")), _nanos(message["ts"]))
        if record.get("error"):
            span.set_status(Status(StatusCode.ERROR, record["error"]))
        span.end(_nanos(record["end"]))

    def failure(self) -> str | None:
        """Why the last export failed, until one succeeds again."""
        return self.exporter.last_failure

    def flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every span emitted so far; True when done within the timeout."""
        return self._provider.force_flush(timeout_millis)

    def close(self) -> None:
        """Flush and shut the exporter down."""
        self._provider.shutdown()


def default_exporter(name: str = "auto") -> SpanExporter:
    """An OTLP exporter (HTTP, else gRPC) for `otlp`, and for `auto` when one is installed; else the console."""
    if name not in EXPORTERS:
        raise ConfigError(f"platform.tracing.exporter: {name!r} is not one of {', '.join(EXPORTERS)}")
    if name in ("auto", "otlp"):
        exporter = _otlp_exporter()
        if exporter is not None:
            return exporter
        if name == "otlp":
            raise ConfigError("platform.tracing.exporter = 'otlp' needs an OTLP exporter: "
                              "pip install opentelemetry-exporter-otlp")
    return ConsoleSpanExporter()


def _otlp_exporter() -> SpanExporter | None:
    # Endpoint, headers and TLS come from the standard OTEL_EXPORTER_OTLP_* variables.
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            return None
    return OTLPSpanExporter()


class _RecordIds(IdGenerator):
    """Hands the SDK the ids the PLBA record already has, instead of random ones."""

    def __init__(self) -> None:
        # Per thread: spans are emitted synchronously from many worker threads at once.
        self._local = threading.local()

    def use(self, trace_id: int, span_id: int) -> None:
        """Set the ids of the span about to start in this thread."""
        self._local.ids = (trace_id, span_id)

    def generate_trace_id(self) -> int:
        """The record's trace id (asked only for a root span)."""
        return self._local.ids[0]

    def generate_span_id(self) -> int:
        """The record's span id."""
        return self._local.ids[1]


class _WatchedExporter(SpanExporter):
    """Delegates to the real exporter and remembers its last failure, for health."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.last_failure: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export, recording a failure (result or exception) instead of losing it in a background thread."""
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - reported through the trace service's health
            self.last_failure = f"{type(exc).__name__}: {exc}"
            return SpanExportResult.FAILURE
        self.last_failure = None if result == SpanExportResult.SUCCESS else f"{len(spans)} span(s) not exported"
        return result

    def shutdown(self) -> None:
        """Shut the real exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the real exporter."""
        return self.inner.force_flush(timeout_millis)


def _parent_context(trace_id: int, parent_id: str | None) -> Context:
    # An explicit empty Context for roots: the ambient OTel context (the host's own spans) must not adopt ours.
    if not parent_id:
        return Context()
    parent = trace_api.SpanContext(trace_id, int(parent_id, 16), is_remote=False,
                                   trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace_api.set_span_in_context(NonRecordingSpan(parent), Context())


def _attributes(values: dict[str, Any] | None) -> dict[str, Any]:
    """OTel accepts primitives and lists of one primitive type; anything else travels as JSON text."""
    result: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if value is None:
            continue
        if isinstance(value, _PRIMITIVES):
            result[key] = value
        elif isinstance(value, list | tuple) and value and all(type(v) is type(value[0]) for v in value) \
                and isinstance(value[0], _PRIMITIVES):
            result[key] = list(value)
        else:
            result[key] = json.dumps(value, default=str)
    return result


def _nanos(seconds: float) -> int:
    return int(seconds * 1e9)
