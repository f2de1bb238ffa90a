"""Log correlation: every record carries trace_id and span_id while a trace is current."""

from __future__ import annotations

import io
import logging

from plba.logs import configure_logging
from plba.tracing import TraceService

log = logging.getLogger("acme.orders")


def test_given_json_logs_when_logging_inside_and_outside_a_trace_then_each_line_has_the_required_keys(
        traces: TraceService, json_log) -> None:
    """Given [log] format json, when logging in a trace and outside, then lines hold ts, level, logger, ids."""
    with traces.trace("job.discovered") as root:
        log.info("inside")
        with traces.span("parse") as child:
            log.warning("nested")
    log.info("outside")

    inside, nested, outside = json_log.lines()
    for line in (inside, nested, outside):
        assert {"ts", "level", "logger", "message", "trace_id", "span_id"} <= line.keys()
    assert (inside["trace_id"], inside["span_id"]) == (root.context.trace_id, root.context.span_id)
    assert (nested["trace_id"], nested["span_id"]) == (root.context.trace_id, child.context.span_id)
    assert (nested["level"], nested["logger"]) == ("WARNING", "acme.orders")
    assert outside["trace_id"] is None and outside["span_id"] is None


def test_given_json_logs_when_a_record_has_extras_and_an_exception_then_both_are_in_the_line(
        traces: TraceService, json_log) -> None:
    """Given json logs, when logging with extra= and exc_info, then the line has the extra keys and traceback."""
    try:
        raise ValueError("bad sku")
    except ValueError:
        log.exception("rejected", extra={"order": 42})

    (line,) = json_log.lines()
    assert line["order"] == 42
    assert "ValueError: bad sku" in line["exc_info"]


def test_given_logging_configured_when_another_handler_receives_a_record_then_it_carries_the_ids_too(
        traces: TraceService, json_log) -> None:
    """Given configure_logging ran, when a plugin's own handler gets a record, then trace_id and span_id are on it."""
    received: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = received.append
    log.addHandler(handler)
    try:
        with traces.trace("job.discovered") as root:
            log.info("inside")
    finally:
        log.removeHandler(handler)

    assert (received[0].trace_id, received[0].span_id) == (root.context.trace_id, root.context.span_id)


def test_given_plain_logs_when_logging_inside_a_trace_then_the_line_ends_with_the_ids(
        traces: TraceService, root_logger) -> None:
    """Given [log] format plain, when logging in a trace, then the line names trace and span."""
    stream = io.StringIO()
    configure_logging("INFO", "plain", stream)
    with traces.trace("job.discovered") as root:
        log.info("inside")
    log.info("outside")

    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith(f"inside [trace={root.context.trace_id} span={root.context.span_id}]")
    assert outside.endswith("outside")
