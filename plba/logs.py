"""Logging from the `[log]` section: level, and rich, plain or JSON lines, with trace ids on every record."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from plba.tracing.context import current_span

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s%(trace_suffix)s"


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (None outside a trace) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        span = current_span()
        record.trace_id = span.trace_id if span else None
        record.span_id = span.span_id if span else None
        record.trace_suffix = f" [trace={span.trace_id} span={span.span_id}]" if span else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, trace_id, span_id (+ exc_info, extras)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Install one handler on the root logger in the chosen format, replacing earlier ones we made."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "rich" if getattr(stream, "isatty", lambda: False)() else "plain"
    handler = _handler(fmt, stream)
    handler.addFilter(TraceContextFilter())
    handler._plba = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_plba", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(str(level).upper())


def configure_from_settings(settings: Any, debug: bool = False) -> None:
    """Apply the `[log]` section; `debug` forces the DEBUG level."""
    level = "DEBUG" if debug else str(settings.get("log.level", "INFO")).upper()
    configure_logging(level, str(settings.get("log.format", "auto")))


def _handler(fmt: str, stream: Any) -> logging.Handler:
    if fmt == "rich":
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(file=stream), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s%(trace_suffix)s"))
        return handler
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN_FORMAT))
    return handler
