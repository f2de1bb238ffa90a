"""Where finished spans go: nowhere, the log, or a JSON-lines file."""

from __future__ import annotations

import abc
import json
import logging
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger("plba.traces")


class TraceTransport(abc.ABC):
    """Receives each finished span as a JSON-ready record."""

    # True for a transport that drops everything, so the service can skip building records.
    discards = False

    @abc.abstractmethod
    def emit(self, record: dict[str, Any]) -> None:
        """Deliver one span record; may raise, and the service counts the failure."""

    def close(self) -> None:
        """Flush and release resources."""


class NoOpTraceTransport(TraceTransport):
    """Drops every record: tracing context still propagates, nothing is written."""

    discards = True

    def emit(self, record: dict[str, Any]) -> None:
        """Drop the record."""


class LogTraceTransport(TraceTransport):
    """Writes each span as one log line on the `plba.traces` logger."""

    def emit(self, record: dict[str, Any]) -> None:
        """Log the span's name, duration and messages."""
        messages = "; ".join(m["message"] for m in record["messages"])
        logger.info(
            "span %s %.1f ms%s%s",
            record["name"],
            record["duration_ms"],
            f" error={record['error']}" if record["error"] else "",
            f" [{messages}]" if messages else "",
        )


class JsonlTraceTransport(TraceTransport):
    """Appends one JSON object a span to a file; a lock keeps lines whole under threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, record: dict[str, Any]) -> None:
        """Append the record as one line and flush it, so readers see whole lines only."""
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


def build_transport(settings: Any) -> TraceTransport:
    """The transport named by `platform.tracing.transport`."""
    kind = str(settings.get("platform.tracing.transport", "log")).lower()
    if kind == "noop":
        return NoOpTraceTransport()
    if kind == "log":
        return LogTraceTransport()
    if kind == "jsonl":
        return JsonlTraceTransport(settings.get("platform.tracing.path", "var/traces.jsonl"))
    if kind == "otel":
        from plba.tracing.otel import OtelTraceTransport

        return OtelTraceTransport()
    raise ValueError(f"unknown transport {kind!r}")
