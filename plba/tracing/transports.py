"""Where finished spans go: nowhere, the log, or a JSON-lines file."""

from __future__ import annotations

import abc
import functools
import json
import logging
import weakref
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plba.tracing.context import SpanContext, use_span
from plba.tracing.writer import FLUSH_BYTES, FLUSH_INTERVAL, AppendWriter

if TYPE_CHECKING:
    from plba.tracing.service import Span

logger = logging.getLogger("plba.traces")

# One encoder for every line: building one per json.dumps call is a measurable share of a span.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_escape = encode_basestring_ascii  # what _ENCODER does to a str (ensure_ascii)
# The spans of one trace share its id, and those of a batch of tasks their parent and name: a cache
# hit costs a fraction of escaping the string again, which is the largest single cost of a line.
_escape_shared = functools.lru_cache(maxsize=1024)(_escape)


def _chunk_encoder() -> Callable[[Any, int], Sequence[str]]:
    """What `_ENCODER.encode` does, as chunks, without building a C encoder on every call.

    Built without the circular-reference memo, which every thread would share: a circular
    attribute raises RecursionError instead, and the service counts that span as lost.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator on this interpreter
        return lambda value, _level: (_ENCODER.encode(value),)
    return make(None, str, _escape, None, ":", ",", False, False, True)


_chunks = _chunk_encoder()


class TraceTransport(abc.ABC):
    """Receives each finished span as a JSON-ready record."""

    # True for a transport that drops everything, so the service can skip building records.
    discards = False

    @abc.abstractmethod
    def emit(self, record: dict[str, Any]) -> None:
        """Deliver one span record; may raise, and the service counts the failure."""

    def emit_span(self, span: Span, ended: float) -> None:
        """Deliver a finished span (the service's entry point); builds its record for `emit` by default."""
        self.emit(span.to_record(ended))

    def failure(self) -> str | None:
        """Why spans already accepted are being lost (a failing background export), else None."""
        return None

    def close(self) -> None:
        """Flush and release resources."""


class NoOpTraceTransport(TraceTransport):
    """Drops every record: tracing context still propagates, nothing is written."""

    discards = True

    def emit(self, record: dict[str, Any]) -> None:
        """Drop the record."""


class LogTraceTransport(TraceTransport):
    """Writes each span as one DEBUG line on the `plba.traces` logger.

    DEBUG, because at the default INFO level a line per span would double the output of every
    task; the trace ids are on every log line anyway. `plba --debug run` (or `log.level = "DEBUG"`)
    shows the spans, and the jsonl transport records them for `plba traces show`.
    """

    @property
    def discards(self) -> bool:  # type: ignore[override]
        """True while DEBUG is off for `plba.traces`: then no span record is even built."""
        return not logger.isEnabledFor(logging.DEBUG)

    def emit(self, record: dict[str, Any]) -> None:
        """Log the span's name, duration and messages, the line carrying the span's own ids."""
        if not logger.isEnabledFor(logging.DEBUG):
            return
        messages = "; ".join(m["message"] for m in record["messages"])
        # The span has ended, so the ids current here are its parent's (or none): make its own current.
        with use_span(SpanContext(record["trace_id"], record["span_id"], record["parent_id"])):
            logger.debug(
                "span %s %.1f ms%s%s",
                record["name"],
                record["duration_ms"],
                f" error={record['error']}" if record["error"] else "",
                f" [{messages}]" if messages else "",
            )


class JsonlTraceTransport(TraceTransport):
    """Appends one JSON object a span to a file, through an `AppendWriter` that keeps lines whole.

    The file is opened at the first span, and again after a failure: a path that cannot be
    opened fails emits (counted by the service as degraded health), never the runtime's start;
    a write that fails later is reported by `failure()` until one succeeds.
    """

    def __init__(self, path: str | Path, *, flush_bytes: int = FLUSH_BYTES,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        self.path = Path(path)
        self._writer = AppendWriter(self.path, flush_bytes=flush_bytes, flush_interval=flush_interval)
        # A transport dropped without close() (or left open at exit) still writes what it holds.
        weakref.finalize(self, self._writer.close)

    def emit(self, record: dict[str, Any]) -> None:
        """Append the record as one line."""
        self._writer.write(_ENCODER.encode(record) + "\n")

    def emit_span(self, span: Span, ended: float) -> None:
        """Append the span as one line, formatted straight from it: `emit(to_record())`'s JSON, times to the µs."""
        # One f-string calling C functions only, fixed-point times (cheaper than the shortest repr):
        # this runs for every task.
        context, parent, name, error = span.context, span.context.parent_id, span.name, span.error
        self._writer.write(
            f'{{"trace_id":{_escape_shared(context.trace_id)},"span_id":{_escape(context.span_id)},'
            f'"parent_id":{"null" if parent is None else _escape_shared(parent)},'
            f'"name":{_escape_shared(name) if type(name) is str else _ENCODER.encode(name)},'
            f'"start":{span.started:.6f},"end":{ended:.6f},"duration_ms":{(ended - span.started) * 1000:.3f},'
            f'"attributes":{"".join(_chunks(span.attributes, 0))},'
            f'"messages":{"".join(_chunks(span.messages, 0)) if span.messages else "[]"},'
            f'"error":{"null" if error is None else _escape(error)}}}\n'
        )

    def flush(self) -> None:
        """Write every line accepted so far."""
        self._writer.flush()

    def failure(self) -> str | None:
        """The last write error, until a later write succeeds."""
        return self._writer.failure

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self._writer.close()


