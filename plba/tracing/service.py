"""TraceService: opens traces and spans, records messages and errors, hands spans to a transport."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import MutableMapping
from typing import Any

from plba.contracts import HealthStatus, WorkerHealth
from plba.tracing.context import SpanContext, _current, current_span, extract
from plba.tracing.transports import NoOpTraceTransport, TraceTransport

logger = logging.getLogger("plba.tracing")


class Span:
    """A span being recorded: identity, timing, attributes, messages and error.

    Its own `with` block: entering makes it current, leaving records an escaping error and hands it
    to the service. A plain slotted class, not a dataclass or a generator-based context manager:
    one is made for every task a worker runs.
    """

    __slots__ = ("context", "name", "attributes", "started", "messages", "error", "_service", "_token")

    def __init__(self, service: TraceService, context: SpanContext, name: str, attributes: dict[str, Any]) -> None:
        self.context = context
        self.name = name
        self.attributes = attributes
        self.started = time.time()
        self.messages: list[dict[str, Any]] = []
        self.error: str | None = None
        self._service = service
        self._token: contextvars.Token[Any] | None = None

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

    def __enter__(self) -> Span:
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        assert self._token is not None, "__exit__ without __enter__"
        _current.reset(self._token)
        if exc is not None:
            self.error = f"{exc_type.__name__}: {exc}"
        self._service.finish(self)


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
        """True when spans go nowhere (`noop`, or `log` while DEBUG is off): callers may skip recording them."""
        return self.transport.discards

    def trace(self, name: str, **attributes: Any) -> Span:
        """Open a new trace (a root span) for a piece of discovered work; use it with `with`."""
        return Span(self, SpanContext.new_root(), name, attributes)

    def span(self, name: str, **attributes: Any) -> Span:
        """Open a step inside the current span, or a new trace when none is current."""
        # The context, not the recorded span: a trace resumed without a service (use_span) nests too.
        current = current_span()
        return Span(self, current.child() if current else SpanContext.new_root(), name, attributes)

    def resume(self, metadata: MutableMapping[str, Any] | None, name: str, **attributes: Any) -> Span:
        """Continue the trace carried in task metadata (or start one) with a span named `name`."""
        parent = extract(metadata)
        return Span(self, parent.child() if parent else SpanContext.new_root(), name, attributes)

    def message(self, text: str, **attributes: Any) -> None:
        """Add a business milestone to the current span; ignored when no span is current."""
        span = _current.get()
        if type(span) is Span:
            span.messages.append({"ts": time.time(), "message": text, "attributes": attributes})

    def current(self) -> Span | None:
        """The span being recorded in this context, if any."""
        span = _current.get()
        return span if type(span) is Span else None

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
        transport = self.transport
        if transport.discards:
            return
        # A transport failure must never fail the task being traced: count it and carry on.
        try:
            transport.emit_span(span, time.time())
        except Exception as exc:  # noqa: BLE001 - any transport error is reported through health
            with self._lock:
                first = self.last_failure is None
                self.failures += 1
                self.last_failure = f"{type(exc).__name__}: {exc}"
            # Once per outage, not once per span: a broken transport must not flood the log.
            if first:
                logger.warning("trace transport failing, spans are being lost: %s", self.last_failure)
        else:
            # No lock on the way of every span: under the GIL the increment loses nothing in
            # practice, and the count is only shown in health.
            self.emitted += 1
            if self.last_failure is not None:
                with self._lock:
                    recovered, self.last_failure = self.last_failure is not None, None
                if recovered:
                    logger.info("trace transport recovered")
