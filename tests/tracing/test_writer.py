"""The jsonl writer: whole lines across processes, lines written without close, failures reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from plba.tracing import JsonlTraceTransport, TraceService
from plba.tracing.reader import read_records
from tests.helpers import REPO, wait_for

# A child process tracing `count` spans into `path`, each with a blob of `size` characters, then
# (with `hold`) printing "done" and waiting to be killed, its transport never closed.
CHILD = """
import sys, threading
from plba.tracing import JsonlTraceTransport, TraceService
path, count, size, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "hold"
traces = TraceService(JsonlTraceTransport(path))
for n in range(count):
    with traces.trace("job", process=sys.argv[5], n=n, blob="x" * (size + n % 7)):
        pass
if hold:
    print("done", flush=True)
    threading.Event().wait()
traces.close()
"""


def child(path: Path, count: int, size: int, hold: bool, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(count), str(size),
                             "hold" if hold else "close", name],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_given_processes_appending_to_one_file_when_they_finish_then_every_line_is_one_whole_record(
        tmp_path: Path) -> None:
    """Given three processes writing big lines (beyond PIPE_BUF) to one file at once, then no line is split."""
    path = tmp_path / "traces.jsonl"
    children = [child(path, 2000, 6000, False, f"p{n}") for n in range(3)]
    for process in children:
        assert process.wait(120) == 0

    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]  # raises on any broken line
    for name in ("p0", "p1", "p2"):
        assert sorted(r["attributes"]["n"] for r in records if r["attributes"]["process"] == name) == list(range(2000))


def test_given_spans_and_no_close_when_the_process_is_killed_then_the_file_holds_them_whole(
        tmp_path: Path) -> None:
    """Given a process that traced spans and never closed its transport, when SIGKILLed, then all are readable."""
    path = tmp_path / "traces.jsonl"
    process = child(path, 300, 100, True, "p")
    try:
        assert process.stdout.readline() == "done\n"
        # Written by the periodic flush: the transport is neither closed nor full.
        wait_for(lambda: path.is_file() and len(list(read_records(path))) == 300, message="spans flushed")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    assert path.read_bytes().endswith(b"\n")
    assert sorted(r["attributes"]["n"] for r in read_records(path)) == list(range(300))


def test_given_a_transport_left_open_when_spans_end_then_readers_see_them_without_close(tmp_path: Path) -> None:
    """Given an open jsonl transport, when a span ends, then it reaches the file without close or flush."""
    path = tmp_path / "traces.jsonl"
    traces = TraceService(JsonlTraceTransport(path))
    with traces.trace("job"):
        pass
    wait_for(lambda: path.is_file() and [r["name"] for r in read_records(path)] == ["job"], message="span written")
    traces.close()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_given_a_file_that_refuses_writes_when_spans_are_flushed_then_health_degrades_with_the_error() -> None:
    """Given a jsonl path that opens but cannot be written (/dev/full), when flushed, then tracing is degraded."""
    transport = JsonlTraceTransport("/dev/full")
    traces = TraceService(transport)
    with traces.trace("job"):
        pass
    transport.flush()

    health = traces.health()
    assert health.status == "degraded"
    assert "trace export failing" in health.detail and "/dev/full" in health.detail
    traces.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_given_lines_waiting_when_the_process_forks_then_the_child_writes_only_its_own(tmp_path: Path) -> None:
    """Given a line queued but not written, when the process forks, then parent and child each write theirs once."""
    path = tmp_path / "traces.jsonl"
    traces = TraceService(JsonlTraceTransport(path, flush_interval=60))
    with traces.trace("parent"):
        pass
    pid = os.fork()
    if pid == 0:  # the child: trace one span of its own, write it, and leave without running pytest's exit
        try:
            with traces.trace("child"):
                pass
            traces.close()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    traces.close()

    assert sorted(record["name"] for record in read_records(path)) == ["child", "parent"]
