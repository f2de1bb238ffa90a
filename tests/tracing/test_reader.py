"""Reading the jsonl file: one trace as a tree, and following new records as they are written."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from plba.tracing import JsonlTraceTransport, TraceService
from plba.tracing.reader import Follower, TraceNotFound, build_tree, read_records, trace_records


def record(trace_id: str, span_id: str, parent_id: str | None, name: str, start: float) -> dict:
    """A span record as the jsonl transport writes it."""
    return {"trace_id": trace_id, "span_id": span_id, "parent_id": parent_id, "name": name, "start": start,
            "end": start + 1, "duration_ms": 1000.0, "attributes": {}, "messages": [], "error": None}


def write(path: Path, *records: dict, tail: str = "") -> None:
    """Append records (and an optional raw tail) to the file."""
    with path.open("a") as file:
        file.writelines(json.dumps(r) + "\n" for r in records)
        file.write(tail)


@pytest.fixture
def traced_file(tmp_path: Path) -> tuple[Path, str, str]:
    """A file with two traces written by the jsonl transport; returns the path and both trace ids."""
    path = tmp_path / "t.jsonl"
    traces = TraceService(JsonlTraceTransport(path))
    with traces.trace("job.discovered") as first, traces.span("parse"), traces.span("sku lookup"):
        pass
    with traces.trace("job.discovered") as second:
        pass
    traces.close()
    return path, first.context.trace_id, second.context.trace_id


def test_given_two_traces_when_one_is_read_then_only_its_spans_come_back_as_one_tree(traced_file) -> None:
    """Given two traces in a file, when one is read, then its three spans nest root > parse > sku lookup."""
    path, first, _ = traced_file

    (root,) = build_tree(trace_records(path, first))

    assert root.record["name"] == "job.discovered"
    assert [c.record["name"] for c in root.children] == ["parse"]
    assert [c.record["name"] for c in root.children[0].children] == ["sku lookup"]


def test_given_a_unique_prefix_when_a_trace_is_looked_up_then_it_is_found(traced_file) -> None:
    """Given the first characters of a trace id, when looked up, then the trace comes back."""
    path, first, second = traced_file
    length = next(n for n in range(1, 33) if first[:n] != second[:n])

    assert {r["trace_id"] for r in trace_records(path, first[:length].upper())} == {first}


def test_given_an_unknown_or_ambiguous_id_when_looked_up_then_trace_not_found_says_why(traced_file) -> None:
    """Given an id in no trace, or the empty prefix of both, when looked up, then TraceNotFound."""
    path, _, _ = traced_file
    with pytest.raises(TraceNotFound, match="not found"):
        trace_records(path, "f" * 31 + "g")
    with pytest.raises(TraceNotFound, match="ambiguous"):
        trace_records(path, "")


def test_given_orphans_and_garbage_when_a_tree_is_built_then_orphans_are_roots_and_garbage_is_skipped(
        tmp_path: Path) -> None:
    """Given a span whose parent is elsewhere and lines that are not records, when read, then no error."""
    path = tmp_path / "t.jsonl"
    t = "a" * 32
    write(path, record(t, "2" * 16, "1" * 16, "task job", 2.0), record(t, "3" * 16, "2" * 16, "step", 3.0),
          record(t, "4" * 16, "9" * 16, "task job", 1.0), tail='not json\n[1, 2]\n{"half": ')

    roots = build_tree(read_records(path))

    assert [(r.record["span_id"], len(r.children)) for r in roots] == [("4" * 16, 0), ("2" * 16, 1)]


def test_given_a_follower_when_records_are_appended_in_pieces_then_each_is_yielded_once_whole(
        tmp_path: Path) -> None:
    """Given a follower at the end of a file, when a record arrives in two writes, then it is yielded once."""
    path = tmp_path / "t.jsonl"
    write(path, record("a" * 32, "1" * 16, None, "old", 1.0))
    stop = threading.Event()
    with Follower(path, poll_interval=0.01) as follower:
        records = follower.records(stop)
        line = json.dumps(record("b" * 32, "2" * 16, None, "new", 2.0)) + "\n"
        write(path, tail=line[:20])
        write(path, tail=line[20:])
        assert next(records)["name"] == "new"
        stop.set()
        assert list(records) == []


def test_given_a_follower_when_the_file_is_truncated_then_it_reads_the_new_content_from_the_start(
        tmp_path: Path) -> None:
    """Given a follower that read a file, when the file is truncated and rewritten, then new records come."""
    path = tmp_path / "t.jsonl"
    write(path, record("a" * 32, "1" * 16, None, "first", 1.0), record("a" * 32, "2" * 16, None, "second", 1.0))
    with Follower(path, from_start=True, poll_interval=0.01) as follower:
        records = follower.records()
        assert [next(records)["name"], next(records)["name"]] == ["first", "second"]
        path.write_text(json.dumps(record("c" * 32, "3" * 16, None, "rotated", 3.0)) + "\n")
        assert next(records)["name"] == "rotated"
