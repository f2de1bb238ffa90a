"""TraceService: opens traces and spans, records messages and errors, hands spans to a transport."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from plba.contracts import HealthStatus, WorkerHealth
from plba.tracing.context import SpanContext, _current, extract
from plba.tracing.transports import NoOpTraceTransport, TraceTransport

logger = logging.getLogger("plba.tracing")


@dataclass(slots=True)
class Span:
    """A span being recorded: identity, timing, attributes, messages and error."""

    context: SpanContext
    name: str
    attributes: dict[str, Any]
    started: float = field(default_factory=time.time)
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_record(self, ended: float) -> dict[str, Any]:
        """The finished span as the record transports receive."""
        return {
            "trace_id": self.context.trace_id,
            "span_id": self.context.span_id,
            "parent_id": self.context.parent_id,
            "name": self.name,
            "start": self.started,
            "end": ended,
            "duration_ms": round((ended - self.started) * 1000, 3),
            "attributes": self.attributes,
            "messages": self.messages,
            "error": self.error,
        }


_active: contextvars.ContextVar[Span | None] = contextvars.ContextVar("plba_active_span", default=None)


class SpanScope:
    """The `with` block of one span: makes it current, records an escaping error, then emits it.

    A plain class rather than a generator-based context manager: it runs once per task.
    """

    __slots__ = ("_service", "_span", "_tokens")

    def __init__(self, service: TraceService, context: SpanContext, name: str, attributes: dict[str, Any]) -> None:
        self._service = service
        self._span = Span(context, name, attributes)
        self._tokens: tuple[Any, Any] | None = None

    def __enter__(self) -> Span:
        self._tokens = (_active.set(self._span), _current.set(self._span.context))
        return self._span

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        assert self._tokens is not None, "__exit__ without __enter__"
        active_token, current_token = self._tokens
        _current.reset(current_token)
        _active.reset(active_token)
        if exc is not None:
            self._span.error = f"{exc_type.__name__}: {exc}"
        self._service.finish(self._span)


class TraceService:
    """Platform tracing: traces where work is discovered, spans for steps, messages for milestones."""

    def __init__(self, transport: TraceTransport | None = None) -> None:
        self.transport = transport or NoOpTraceTransport()
        self._lock = threading.Lock()
        self.emitted = 0
        self.failures = 0
        self.last_failure: str | None = None

    @property
    def discards(self) -> bool:
        """True when spans go nowhere (the `noop` transport): callers may skip the work of recording them."""
        return self.transport.discards

    def trace(self, name: str, **attributes: Any) -> SpanScope:
        """Open a new trace (a root span) for a piece of discovered work; use it with `with`."""
        return SpanScope(self, SpanContext.new_root(), name, attributes)

    def span(self, name: str, **attributes: Any) -> SpanScope:
        """Open a step inside the current span, or a new trace when none is current."""
        # The context, not the recorded span: a trace resumed without a service (use_span) nests too.
        current = _current.get()
        return SpanScope(self, current.child() if current else SpanContext.new_root(), name, attributes)

    def resume(self, metadata: MutableMapping[str, Any] | None, name: str, **attributes: Any) -> SpanScope:
        """Continue the trace carried in task metadata (or start one) with a span named `name`."""
        parent = extract(metadata)
        return SpanScope(self, parent.child() if parent else SpanContext.new_root(), name, attributes)

    def message(self, text: str, **attributes: Any) -> None:
        """Add a business milestone to the current span; ignored when no span is current."""
        span = _active.get()
        if span is not None:
            span.messages.append({"ts": time.time(), "message": text, "attributes": attributes})

    def current(self) -> Span | None:
        """The span being recorded in this context, if any."""
        return _active.get()

    def health(self) -> WorkerHealth:
        """Degraded while the transport has failed since its last success (emit, or a later export)."""
        if self.last_failure:
            return WorkerHealth(HealthStatus.DEGRADED, f"{self.failures} span(s) lost: {self.last_failure}")
        failure = self.transport.failure()
        if failure:
            return WorkerHealth(HealthStatus.DEGRADED, f"trace export failing: {failure}")
        return WorkerHealth(HealthStatus.OK, f"{self.emitted} span(s) emitted")

    def close(self) -> None:
        """Close the transport."""
        self.transport.close()

    def finish(self, span: Span) -> None:
        """Hand a finished span to the transport; a failing transport is counted, never raised."""
        if self.transport.discards:
            return
        self._emit(span.to_record(time.time()))

    def _emit(self, record: dict[str, Any]) -> None:
        # A transport failure must never fail the task being traced: count it and carry on.
        try:
            self.transport.emit(record)
        except Exception as exc:  # noqa: BLE001 - any transport error is reported through health
            with self._lock:
                first = self.last_failure is None
                self.failures += 1
                self.last_failure = f"{type(exc).__name__}: {exc}"
            # Once per outage, not once per span: a broken transport must not flood the log.
            if first:
                logger.warning("trace transport failing, spans are being lost: %s", self.last_failure)
        else:
            with self._lock:
                recovered = self.last_failure is not None
                self.emitted += 1
                self.last_failure = None
            if recovered:
                logger.info("trace transport recovered")
