"""The judging scenario: a plugin's producer and handler share one trace per task in JSON logs and the jsonl file."""

from __future__ import annotations

import json
from pathlib import Path

from plba import create_runtime
from plba.tracing.reader import build_tree, read_records
from tests.helpers import wait_for
from tests.tracing.apps import JobsApp

TASKS = 5


def test_given_a_producer_tracing_each_task_when_the_runtime_runs_then_logs_and_spans_share_one_trace_per_task(
        tmp_path: Path, json_log) -> None:
    """Given json logs and the jsonl transport, when 5 tasks flow, then both sides log the same trace_id per task."""
    path = tmp_path / "t.jsonl"
    app = JobsApp(TASKS)
    settings = {"log": {"format": "json"}, "platform": {"tracing": {"transport": "jsonl", "path": str(path)}}}

    with create_runtime(app, enable_http_control=False, settings=settings) as runtime:
        wait_for(lambda: len(app.handled) == TASKS, message="every task handled")
        assert runtime.health()["status"] == "ok"
    # Leaving the block closed the runtime, so every span is written.

    discovered = {line["message"].split()[-1]: line for line in json_log.messages("discovered job")}
    handled = {line["message"].split()[-1]: line for line in json_log.messages("handled job")}
    assert discovered.keys() == handled.keys() == {str(n) for n in range(TASKS)}
    for n in discovered:
        assert discovered[n]["trace_id"] == handled[n]["trace_id"] is not None
        assert discovered[n]["span_id"] != handled[n]["span_id"]
    assert len({line["trace_id"] for line in discovered.values()}) == TASKS

    records = list(read_records(path))
    assert [json.loads(line) for line in path.read_text().splitlines()] == records
    assert len(records) == 2 * TASKS
    by_trace: dict[str, list[dict]] = {}
    for record in records:
        by_trace.setdefault(record["trace_id"], []).append(record)
    assert by_trace.keys() == {line["trace_id"] for line in discovered.values()}
    for n, line in handled.items():
        (root,) = build_tree(by_trace[line["trace_id"]])
        assert root.record["name"] == "job.discovered" and root.record["attributes"] == {"n": int(n)}
        assert root.record["messages"][0]["message"] == "job queued"
        assert [child.record["name"] for child in root.children] == ["task job"]
        assert root.children[0].record["span_id"] == line["span_id"]
