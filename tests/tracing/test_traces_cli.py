"""`plba traces show` and `plba traces tail`: output and error lines in-process, following and Ctrl-C as a process."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from plba.tracing import JsonlTraceTransport, TraceService
from tests.helpers import PlbaProcess, plba_env, plba_in_process


@pytest.fixture
def env() -> dict[str, str]:
    """A clean environment for `plba`, wide enough that Rich never wraps a line."""
    return plba_env(COLUMNS="200")


def write_trace(path: Path) -> str:
    """Write one trace (a root with a message, a failing child) through the jsonl transport; return its id."""
    traces = TraceService(JsonlTraceTransport(path))
    with traces.trace("job.discovered", uid=7) as root:
        traces.message("mail fetched", size=3)
        try:
            with traces.span("store"):
                raise RuntimeError("database is locked")
        except RuntimeError:
            pass
    with traces.trace("another.job"):
        pass
    traces.close()
    return root.context.trace_id


def test_given_a_trace_in_the_file_when_shown_then_a_tree_lists_spans_durations_messages_and_errors(
        project: Path, env: dict[str, str]) -> None:
    """Given a jsonl file, when `plba traces show ID --path FILE`, then the tree shows that trace only."""
    path = project / "t.jsonl"
    trace_id = write_trace(path)

    result = plba_in_process("traces", "show", trace_id, "--path", str(path), cwd=project, env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"trace {trace_id}  2 spans"
    assert "job.discovered" in lines[1] and " ms" in lines[1] and "uid=7" in lines[1]
    assert "mail fetched" in result.stdout and "size=3" in result.stdout
    # The failing span's error is on its own line under it
    store = next(index for index, line in enumerate(lines) if "store" in line)
    assert "✗ RuntimeError: database is locked" in lines[store + 1]
    assert "another.job" not in result.stdout


def test_given_settings_naming_the_file_when_shown_without_path_then_that_file_is_read(
        project: Path, env: dict[str, str]) -> None:
    """Given platform.tracing.path in settings.toml, when shown without --path, then that file is used."""
    trace_id = write_trace(project / "var" / "spans.jsonl")
    (project / "settings.toml").write_text('[platform.tracing]\ntransport = "jsonl"\npath = "var/spans.jsonl"\n')

    result = plba_in_process("traces", "show", trace_id[:12], cwd=project, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"trace {trace_id}")


def test_given_no_trace_file_when_shown_then_one_error_line_and_exit_2(project: Path, env: dict[str, str]) -> None:
    """Given the jsonl transport but no file at its path, when shown, then one line names the file, exit code 2."""
    (project / "settings.toml").write_text('[platform.tracing]\ntransport = "jsonl"\n')

    result = plba_in_process("traces", "show", "abc", cwd=project, env=env)

    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: var/traces.jsonl: trace file not found "
                                          "(set --path or platform.tracing.path)"]


def test_given_an_unknown_trace_id_when_shown_then_one_error_line_and_exit_2(
        project: Path, env: dict[str, str]) -> None:
    """Given a file without that trace, when shown, then one line says so and the exit code is 2."""
    path = project / "t.jsonl"
    write_trace(path)

    result = plba_in_process("traces", "show", "0" * 32, "--path", str(path), cwd=project, env=env)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: trace {'0' * 32} not found in {path}"]


def test_given_tail_is_following_when_spans_are_written_then_it_prints_them_and_stops_on_ctrl_c(
        project: Path, env: dict[str, str]) -> None:
    """Given `plba traces tail`, when new spans are written, then one line each, and SIGINT ends it with 0."""
    path = project / "t.jsonl"
    old_trace = write_trace(path)
    tail = PlbaProcess("traces", "tail", "--path", str(path), cwd=project, env=env)
    try:
        tail.wait_for_output("following")
        traces = TraceService(JsonlTraceTransport(path))
        with traces.trace("fresh.job") as root:
            traces.message("picked up")
        traces.close()

        tail.wait_for_output(root.context.trace_id)
        tail.signal(signal.SIGINT)
        assert tail.wait() == 0
    finally:
        tail.kill()

    (line,) = [line for line in tail.output().splitlines() if root.context.trace_id in line]
    assert "fresh.job" in line and "[picked up]" in line and " ms" in line
    assert old_trace not in tail.output()
    assert "Traceback" not in tail.output()


def test_given_no_trace_file_when_tailed_then_one_error_line_and_exit_2(project: Path, env: dict[str, str]) -> None:
    """Given no file, when tailed, then one line names it and the exit code is 2."""
    result = plba_in_process("traces", "tail", "--path", "missing.jsonl", cwd=project, env=env)

    assert result.returncode == 2
    assert result.stderr.startswith("error: missing.jsonl: trace file not found")


def test_given_the_default_transport_when_shown_then_one_line_says_how_to_record_traces(
        project: Path, env: dict[str, str]) -> None:
    """Given no settings (the `log` transport writes no file), when shown, then one line says what to set, exit 2."""
    result = plba_in_process("traces", "show", "abc", cwd=project, env=env)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: platform.tracing.transport is 'log', which writes no trace file: set "
        'platform.tracing.transport = "jsonl" (or PLBA_PLATFORM__TRACING__TRANSPORT=jsonl) and run again, '
        "or pass --path FILE"]
