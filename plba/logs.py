"""Logging from the `[log]` section: level, and rich, plain or JSON lines, with trace ids on every record."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from plba.schema import LOG_FORMATS as FORMATS
from plba.schema import LOG_LEVELS, default
from plba.tracing.context import current_span

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s%(trace_suffix)s"

# Control characters as a text line shows them: a logged value (a request path, a mail's
# Message-ID) can then neither start a forged line of its own nor send escape sequences to the
# terminal that tails the log. C0 and DEL, and C1, which some terminals obey too (0x9b is CSI).
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7f, *range(0x80, 0xa0))}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
# In a traceback, line breaks and indentation are its own.
_TRACEBACK_CONTROLS = {code: text for code, text in _CONTROLS.items() if chr(code) not in "\n\t"}


# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into JSON lines.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "trace_id", "span_id", "trace_suffix"}


def _annotate(record: logging.LogRecord) -> None:
    span = current_span()
    record.trace_id = span.trace_id if span else None
    record.span_id = span.span_id if span else None


def install_record_factory() -> None:
    """Make every record carry `trace_id` and `span_id` from its creation, whichever handler gets it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_plba", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _annotate(record)
        return record

    factory._plba = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (None outside a trace) to every record, and a suffix for text formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        # Ids set at creation win: a handler may run in another thread than the code that logged.
        if not hasattr(record, "trace_id"):
            _annotate(record)
        ids = vars(record)  # the ids are extras, which LogRecord does not declare
        record.trace_suffix = f" [trace={ids['trace_id']} span={ids['span_id']}]" if ids["trace_id"] else ""
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
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                data.setdefault(key, value)
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """The plain and rich formats: one line a record, control characters in what was logged shown escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        r"""The line, with the message's control characters escaped (`\n`, `\x1b`)."""
        record.message = record.message.translate(_CONTROLS)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        """The line, then any traceback or stack on its own lines with other control characters escaped.

        Escaped here rather than in `formatException`: another handler may have cached the
        record's traceback text already.
        """
        line, newline, rest = super().format(record).partition("\n")
        return line + newline + rest.translate(_TRACEBACK_CONTROLS)


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Install one handler on the root logger in the chosen format, replacing earlier ones we made."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "rich" if getattr(stream, "isatty", lambda: False)() else "plain"
    install_record_factory()
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
    level = "DEBUG" if debug else str(settings.get("log.level", default("log.level"))).upper()
    fmt = str(settings.get("log.format", default("log.format")))
    # Logging is set up before validation runs, which then reports a bad value in one line;
    # until then the defaults stand in, rather than a traceback from the logging module.
    configure_logging(level if level in LOG_LEVELS else default("log.level"),
                      fmt if fmt in FORMATS else default("log.format"))


def _handler(fmt: str, stream: Any) -> logging.Handler:
    if fmt == "rich":
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(file=stream), show_path=False)
        handler.setFormatter(TextFormatter("%(message)s%(trace_suffix)s"))
        return handler
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(PLAIN_FORMAT))
    return handler
