"""Where finished spans go: nowhere, the log, or a JSON-lines file."""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

from plba.tracing.context import SpanContext, use_span

logger = logging.getLogger("plba.traces")

# One encoder for every line: building one per json.dumps call is a measurable share of a span.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


class TraceTransport(abc.ABC):
    """Receives each finished span as a JSON-ready record."""

    # True for a transport that drops everything, so the service can skip building records.
    discards = False

    @abc.abstractmethod
    def emit(self, record: dict[str, Any]) -> None:
        """Deliver one span record; may raise, and the service counts the failure."""

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
    """Appends one JSON object a span to a file; a lock keeps lines whole under threads.

    The file is opened at the first span, and again after a failure: a path that cannot be
    written fails emits (counted by the service as degraded health), never the runtime's start.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: Any = None

    def emit(self, record: dict[str, Any]) -> None:
        """Append the record as one line and flush it, so readers see whole lines only."""
        line = _ENCODER.encode(record) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            try:
                self._file.write(line)
                self._file.flush()
            except Exception:
                # A half-written buffer must not prefix the next line: start over with a fresh file object.
                self._close()
                raise

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

