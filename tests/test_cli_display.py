"""What `plba` prints for people at 80 columns, `-h` on every command, and shell completion (Typer CliRunner)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from typer.testing import CliRunner

from plba import QueueWorker, create_runtime, hookimpl
from plba.cli import app
from plba.tracing import JsonlTraceTransport, TraceService
from tests.helpers import plba_env, write_distribution
from tests.test_worker_contract import Misreporting

WIDTH = 80
RUNNER = CliRunner()

LONG_ERROR = ("the acme_broken plugin needs a module that is not installed: pip install acme-broken[imap] "
              "or deselect it")


def invoke(*args: str) -> Any:
    """Run `plba ARGS` in-process in an 80-column terminal."""
    return RUNNER.invoke(app, list(args), env={"COLUMNS": str(WIDTH)})


def flat(text: str) -> str:
    """The text with its wrapping undone, to find a sentence that was wrapped over lines."""
    return " ".join(text.split())


def assert_fits(output: str) -> None:
    """Every line fits in the terminal."""
    too_long = [line for line in output.splitlines() if len(line.rstrip()) > WIDTH]
    assert not too_long, "lines wider than the terminal:\n" + "\n".join(too_long)


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group of the CLI, as the words that name it."""
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


ALL_COMMANDS = list(command_paths(typer.main.get_command(app)))


@pytest.mark.parametrize("words", ALL_COMMANDS, ids=lambda words: " ".join(words) or "plba")
def test_minus_h_is_help_on_every_command(words: tuple[str, ...]) -> None:
    # Given any command, when it is given -h, then it prints the same help as --help
    short, long = invoke(*words, "-h"), invoke(*words, "--help")
    assert short.exit_code == 0, short.output
    assert "Usage:" in short.output and short.output == long.output


def test_shell_completion_can_be_shown_and_completes_commands() -> None:
    # Given the CLI, when the bash completion script is asked for, then it is printed
    shown = invoke("--show-completion", "bash")
    assert shown.exit_code == 0 and "_plba_completion" in shown.output
    assert "--install-completion" in invoke("--help").output
    # And when bash asks to complete `plba pl`, the installed command answers `plugins`
    result = subprocess.run([sys.executable, "-m", "plba"], capture_output=True, text=True, env=plba_env(
        None, _PLBA_COMPLETE="complete_bash", COMP_WORDS="plba pl", COMP_CWORD="1"))
    assert result.stdout.split() == ["plugins"]


@pytest.fixture
def similar_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed: two plugins whose long names differ only at the end, both broken with a long error."""
    site = tmp_path / "site"
    for suffix in ("primary", "fallback"):
        name = f"orders_mailbox_{suffix}"
        write_distribution(site, f"acme-orders-mailbox-{suffix}", "10.20.30", {name: name},
                           {name: f"raise ImportError({LONG_ERROR!r})\n"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PLBA_LOAD_PLUGINS", "orders_mailbox_primary,orders_mailbox_fallback")


def test_plugins_list_at_80_columns_keeps_names_whole_and_errors_in_full(similar_plugins: None) -> None:
    # When the plugins are listed in 80 columns
    result = invoke("plugins", "list")
    # Then every line fits, each name and distribution reads whole on its row, and each error reads in full
    assert result.exit_code == 0, result.output
    assert_fits(result.output)
    for suffix in ("primary", "fallback"):
        row = next(line for line in result.output.splitlines() if line.startswith(f"orders_mailbox_{suffix} "))
        assert f"acme-orders-mailbox-{suffix}" in row and "10.20.30" in row and "failed" in row
        assert (f"✗ 'orders_mailbox_{suffix}' (acme-orders-mailbox-{suffix} 10.20.30): ImportError: {LONG_ERROR}"
                in flat(result.output))


class TwoReaders:
    """Two workers with long, nearly equal names: one misreporting, one idle on a queue; a queue that fails."""

    name = "readers"

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        registry.add_worker(Misreporting("mailbox-reader-primary", {"state": "idle"}, None))
        registry.add_worker(QueueWorker("mailbox-reader-fallback", registry.queue("mailbox-reader-fallback"),
                                        lambda task: None, poll_timeout=0.05))


def test_status_at_80_columns_keeps_rows_apart_and_puts_errors_under_their_table() -> None:
    # Given a running instance with two nearly equal worker names, one of them broken
    settings = {"platform": {"control": {"port": 0}, "tracing": {"transport": "noop"}}}
    with create_runtime(TwoReaders(), settings=settings) as runtime:
        # When `plba status` is read in 80 columns
        result = invoke("status", "--url", f"http://127.0.0.1:{runtime.control.port}")
    # Then every line fits, both rows read their own whole name, and the errors read in full under the tables
    assert result.exit_code == 0, result.output
    assert_fits(result.output)
    lines = result.output.splitlines()
    assert any(line.startswith("mailbox-reader-primary ") and "failed" in line for line in lines)
    assert any(line.startswith("mailbox-reader-fallback ") and "idle" in line for line in lines)
    text = flat(result.output)
    assert ("✗ mailbox-reader-primary: worker 'mailbox-reader-primary'.status() returned dict, "
            "expected WorkerStatus") in text
    assert ("✗ mailbox-reader-primary: worker 'mailbox-reader-primary'.health() returned None, "
            "expected WorkerHealth") in text


class Reports:
    """A plugin with two schedules, one of them with a long name and a cron in Berlin, failing."""

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        """Schedule the two reports."""
        registry.schedule("acme.reports.nightly-summary", self.fail, cron="0 2 * * *", timezone="Europe/Berlin")
        registry.schedule("acme.tick", lambda firing: None, every=3600)

    def fail(self, firing: Any) -> None:
        """Fail, with an error longer than a line."""
        raise RuntimeError(LONG_ERROR)


def test_schedules_list_at_80_columns_keeps_names_and_times_whole_and_errors_under_the_table() -> None:
    # Given a running instance whose long-named schedule failed its last run
    settings = {"platform": {"control": {"port": 0}, "tracing": {"transport": "noop"}}}
    with create_runtime(Reports(), settings=settings) as runtime:
        url = f"http://127.0.0.1:{runtime.control.port}"
        runtime.scheduler.run_now("acme.reports.nightly-summary")
        from plba.testing import wait_until

        wait_until(lambda: runtime.scheduler.schedules()[0]["failures"] == 1, message="the failed run")
        # When `plba schedules list` is read in 80 columns
        result = invoke("schedules", "list", "--url", url)
    # Then every line fits, names and next runs are whole, and the error reads in full under the table
    assert result.exit_code == 0, result.output
    assert_fits(result.output)
    lines = result.output.splitlines()
    assert lines[1].split() == ["schedule", "timing", "next", "run", "last", "runs", "failed"]
    nightly = lines.index(next(line for line in lines if line.startswith("acme.reports.nightly")))
    assert lines[nightly].split()[:3] == ["acme.reports.nightly", "cron", "0"]
    assert " 02:00:00 CET " in lines[nightly] and " failed " in lines[nightly]
    assert lines[nightly + 1].split()[0] == "-summary"  # folded, not cut
    assert any(line.startswith("acme.tick ") and "every 3600s" in line and ":00:00 UTC " in line for line in lines)
    assert f"acme.reports.nightly-summary: last error: RuntimeError: {LONG_ERROR}" in flat(result.output)


def test_traces_show_at_80_columns_wraps_long_attributes_and_errors_instead_of_cutting_them(tmp_path: Path) -> None:
    # Given a trace whose spans carry long attributes and a long error, twice
    path = tmp_path / "t.jsonl"
    error = "database is locked: another process holds the write lock on var/orders.sqlite for over 5 seconds"
    traces = TraceService(JsonlTraceTransport(path))
    with traces.trace("mail.discovered", mailbox="INBOX/orders/incoming", sender="orders@example-customer.com") as root:
        for attempt in (1, 2):
            try:
                with traces.span("store", attempt=attempt, database="var/orders.sqlite"):
                    raise RuntimeError(error)
            except RuntimeError:
                pass
    traces.close()
    # When it is shown in 80 columns
    result = invoke("traces", "show", root.context.trace_id, "--path", str(path))
    # Then every line fits, and each attribute and each error reads in full
    assert result.exit_code == 0, result.output
    assert_fits(result.output)
    text = flat(result.output.replace("│", " "))
    assert "sender=orders@example-customer.com" in text
    assert text.count(f"✗ RuntimeError: {error}") == 2
    assert "attempt=1" in text and "attempt=2" in text
