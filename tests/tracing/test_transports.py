"""Transports: noop, log and jsonl, safe under threads; a failing transport degrades health, never a task."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from plba import create_runtime
from plba.errors import ConfigError
from plba.tracing import (
    JsonlTraceTransport,
    LogTraceTransport,
    NoOpTraceTransport,
    TraceService,
    TraceTransport,
    build_transport,
)
from plba.tracing.reader import read_records
from tests.helpers import wait_for
from tests.tracing.apps import JobsApp

RECORD_KEYS = {"trace_id", "span_id", "parent_id", "name", "start", "end", "duration_ms", "attributes", "messages",
               "error"}


class Settings(dict):
    """The reading interface of the settings object: `get("a.b", default)`."""

    def get(self, key: str, default: Any = None) -> Any:
        """Read a dotted key."""
        value: Any = self
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value


class BrokenTransport(TraceTransport):
    """Fails every emit until `healed` is set."""

    def __init__(self) -> None:
        self.healed = False
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        """Raise, or keep the record once healed."""
        if not self.healed:
            raise OSError("collector unreachable")
        self.records.append(record)


def test_given_many_threads_when_they_emit_to_jsonl_then_every_line_is_one_whole_record(tmp_path: Path) -> None:
    """Given 8 threads each tracing 50 spans with messages, when written to jsonl, then 800 valid full lines."""
    path = tmp_path / "nested" / "traces.jsonl"
    traces = TraceService(JsonlTraceTransport(path))

    def work(t: int) -> None:
        for n in range(50):
            with traces.trace("job", thread=t, n=n, blob="x" * 500):
                traces.message("step", n=n)
                with traces.span("inner"):
                    pass

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    traces.close()

    lines = path.read_text().splitlines()
    assert len(lines) == 8 * 50 * 2
    records = [json.loads(line) for line in lines]
    assert all(record.keys() == RECORD_KEYS for record in records)
    roots = {r["span_id"]: r for r in records if r["name"] == "job"}
    inner = [r for r in records if r["name"] == "inner"]
    assert all(roots[r["parent_id"]]["trace_id"] == r["trace_id"] for r in inner)
    assert all(r["end"] >= r["start"] and r["messages"][0]["message"] == "step" for r in roots.values())
    assert traces.health().status == "ok" and traces.emitted == 800


def test_given_attributes_json_cannot_encode_when_written_to_jsonl_then_they_are_written_as_text(
        tmp_path: Path) -> None:
    """Given an attribute that is not JSON, when the span is written, then it appears as its str()."""
    path = tmp_path / "t.jsonl"
    traces = TraceService(JsonlTraceTransport(path))
    with traces.trace("job", where=path):
        pass
    traces.close()

    (record,) = read_records(path)
    assert record["attributes"] == {"where": str(path)}


def test_given_the_log_transport_when_a_span_ends_then_one_line_names_it_with_its_messages_and_error(
        caplog) -> None:
    """Given the log transport, when a failing span with a message ends, then the plba.traces log says so."""
    traces = TraceService(LogTraceTransport())
    with caplog.at_level(logging.DEBUG, logger="plba.traces"), pytest.raises(KeyError):
        with traces.trace("job.discovered"):
            traces.message("queued")
            raise KeyError("sku")

    (line,) = [r.getMessage() for r in caplog.records if r.name == "plba.traces"]
    assert line.startswith("span job.discovered ") and "error=KeyError: 'sku'" in line and "[queued]" in line


def test_given_json_logs_and_the_log_transport_when_a_span_ends_then_its_line_carries_its_own_ids(
        json_log) -> None:
    """Given the log transport, when a child span ends, then its log line has the child's ids, not the parent's."""
    logging.getLogger().setLevel(logging.DEBUG)
    traces = TraceService(LogTraceTransport())
    with traces.trace("job.discovered"), traces.span("parse") as child:
        pass

    line = next(line for line in json_log.lines() if line["message"].startswith("span parse"))
    assert (line["trace_id"], line["span_id"]) == (child.context.trace_id, child.context.span_id)


def test_given_the_log_transport_at_the_default_info_level_when_a_span_ends_then_nothing_is_logged(
        caplog) -> None:
    """Given the log transport and INFO logging, when spans end, then they add no line (tasks log their own)."""
    traces = TraceService(LogTraceTransport())
    with caplog.at_level(logging.INFO):
        with traces.trace("job.discovered"), traces.span("parse"):
            pass

    assert [r for r in caplog.records if r.name == "plba.traces"] == []


def test_given_the_noop_transport_when_spans_end_then_nothing_is_recorded_but_context_still_flows() -> None:
    """Given noop, when a trace runs, then ids are current inside and health is ok."""
    traces = TraceService(NoOpTraceTransport())
    with traces.trace("job") as root:
        assert traces.current() is root
    assert traces.health().status == "ok"


@pytest.mark.parametrize(("kind", "expected"), [("noop", NoOpTraceTransport), ("log", LogTraceTransport),
                                                ("jsonl", JsonlTraceTransport)])
def test_given_a_transport_name_when_built_from_settings_then_that_transport_is_used(
        tmp_path: Path, kind: str, expected: type) -> None:
    """Given platform.tracing.transport, when built, then the named transport comes back."""
    settings = Settings(platform={"tracing": {"transport": kind, "path": str(tmp_path / "t.jsonl")}})
    assert type(build_transport(settings)) is expected


def test_given_an_unknown_transport_name_when_built_then_a_config_error_names_the_key() -> None:
    """Given transport = "carrier-pigeon", when built, then ConfigError names platform.tracing.transport."""
    with pytest.raises(ConfigError, match="platform.tracing.transport"):
        build_transport(Settings(platform={"tracing": {"transport": "carrier-pigeon"}}))


def test_given_a_transport_that_raises_when_tasks_are_traced_then_they_succeed_and_health_is_degraded(
        caplog) -> None:
    """Given a failing transport, when traced work runs, then it completes, losses are counted, and one warning."""
    transport = BrokenTransport()
    traces = TraceService(transport)

    with caplog.at_level(logging.WARNING, logger="plba.tracing"):
        for n in range(3):
            with traces.trace("job", n=n):
                pass

    health = traces.health()
    assert health.status == "degraded"
    assert "3 span(s) lost" in health.detail and "collector unreachable" in health.detail
    assert len([r for r in caplog.records if r.name == "plba.tracing"]) == 1

    transport.healed = True
    with traces.trace("job"):
        pass
    assert traces.health().status == "ok" and len(transport.records) == 1


def test_given_a_broken_transport_in_the_runtime_when_tasks_flow_then_all_are_handled_and_health_says_so() -> None:
    """Given the runtime's transport raising, when tasks flow, then every task is handled and health is degraded."""
    app = JobsApp(3)
    runtime = create_runtime(app, enable_http_control=False)
    runtime.build()  # builds the configured transport, which the test then replaces before any span
    runtime.traces.transport = BrokenTransport()
    with runtime:
        wait_for(lambda: len(app.handled) == 3, message="every task handled")
        health = runtime.health()

    assert sorted(app.handled) == [0, 1, 2]
    assert health["status"] == "degraded"
    assert health["components"]["tracing"]["status"] == "degraded"


def test_given_a_jsonl_path_that_cannot_be_written_when_the_runtime_runs_then_tasks_succeed_and_tracing_is_degraded(
        tmp_path: Path) -> None:
    """Given a jsonl path under a regular file (unwritable even for root), when tasks flow, then health degrades."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = JobsApp(3)
    settings = {"platform": {"tracing": {"transport": "jsonl", "path": str(blocker / "t.jsonl")}}}

    with create_runtime(app, enable_http_control=False, settings=settings) as runtime:
        wait_for(lambda: len(app.handled) == 3, message="every task handled")
        health = runtime.health()

    assert sorted(app.handled) == [0, 1, 2]
    assert health["status"] == "degraded"
    tracing = health["components"]["tracing"]
    assert tracing["status"] == "degraded" and "span(s) lost" in tracing["detail"]


def test_given_a_jsonl_path_that_becomes_writable_when_spans_follow_then_they_are_written(tmp_path: Path) -> None:
    """Given a jsonl file that could not be opened, when its directory appears, then later spans are written."""
    blocker = tmp_path / "var"
    blocker.write_text("")
    traces = TraceService(JsonlTraceTransport(blocker / "t.jsonl"))
    with traces.trace("lost"):
        pass
    assert traces.health().status == "degraded"

    blocker.unlink()
    with traces.trace("kept"):
        pass
    traces.close()

    assert traces.health().status == "ok"
    assert [r["name"] for r in read_records(blocker / "t.jsonl")] == ["kept"]
