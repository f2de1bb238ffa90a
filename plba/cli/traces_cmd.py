"""`plba traces ...`: one trace as a tree, or spans as they are written, from the jsonl transport's file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from plba.cli.common import ExitCode, fail, reported_errors
from plba.cli.run_cmd import ConfigOption

app = typer.Typer(help="Read the traces the jsonl transport writes.", no_args_is_help=True)

PathOption = Annotated[
    Path | None,
    typer.Option("--path", help="The jsonl trace file; default: platform.tracing.path from the settings."),
]


@app.command("show")
def show(
    trace_id: Annotated[str, typer.Argument(help="The trace id, or a prefix matching one trace.")],
    path: PathOption = None,
    config: ConfigOption = None,
) -> None:
    """Print one trace as a tree of spans with their durations, errors and messages."""
    from rich.console import Console

    from plba.tracing.reader import TraceNotFound, build_tree, trace_records

    path = _trace_file(path, config)
    try:
        records = trace_records(path, trace_id)
    except TraceNotFound as exc:
        fail(str(exc), ExitCode.USAGE)
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror or exc}", ExitCode.USAGE)
    # Wrapped to the terminal, under each branch's guides: a long attribute or error is never cut.
    Console().print(render_trace(build_tree(records)))


@app.command("tail")
def tail(
    path: PathOption = None,
    config: ConfigOption = None,
    from_start: Annotated[bool, typer.Option("--from-start", help="First print the spans already there.")] = False,
) -> None:
    """Print spans as they are written, one line each, until Ctrl-C."""
    from rich.console import Console

    from plba.tracing.reader import Follower

    path = _trace_file(path, config)
    console = Console(soft_wrap=True, highlight=False)
    try:
        with Follower(path, from_start=from_start) as follower:
            # Said once the file is open and positioned: whatever is appended from now on is shown.
            sys.stderr.write(f"following {path} (Ctrl-C to stop)\n")
            sys.stderr.flush()
            for record in follower.records():
                console.print(span_line(record))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror or exc}", ExitCode.USAGE)


def _trace_file(path: Path | None, config: list[Path] | None) -> Path:
    """The file given, else `platform.tracing.path`; a missing file is a usage error that says how to get one."""
    if path is None:
        from plba.config import ConfigurationManager

        with reported_errors():
            settings = ConfigurationManager(config or []).settings
        path = Path(str(settings.get("platform.tracing.path", "var/traces.jsonl")))
        transport = str(settings.get("platform.tracing.transport", "log")).lower()
        if transport != "jsonl" and not path.is_file():
            fail(f"platform.tracing.transport is {transport!r}, which writes no trace file: set "
                 f'platform.tracing.transport = "jsonl" (or PLBA_PLATFORM__TRACING__TRANSPORT=jsonl) and run again, '
                 f"or pass --path FILE", ExitCode.USAGE)
    if not path.is_file():
        fail(f"{path}: trace file not found (set --path or platform.tracing.path)", ExitCode.USAGE)
    return path


def render_trace(roots: list[Any]) -> Any:
    """A Rich tree of one trace: each span with its offset from the trace start, duration, messages and error.

    A span's error is on its own line under the span, so it reads in full however narrow the terminal.
    """
    from rich.markup import escape
    from rich.tree import Tree

    first = roots[0].record
    origin = min(float(node.record.get("start") or 0.0) for node in roots)
    count = _count(roots)
    tree = Tree(f"[bold]trace {escape(str(first['trace_id']))}[/]  {count} span{'s' * (count != 1)}")

    def add(parent: Tree, node: Any) -> None:
        record = node.record
        label = _span_label(record, origin)
        if record.get("error"):
            label += f"\n[red]✗ {escape(str(record['error']))}[/]"
        branch = parent.add(label)
        for message in record.get("messages") or ():
            offset = (float(message.get("ts", origin)) - origin) * 1000
            branch.add(f"[cyan]• {escape(str(message.get('message', '')))}[/] [dim]+{offset:.1f} ms"
                       f"{escape(_attributes(message.get('attributes')))}[/]")
        for child in node.children:
            add(branch, child)

    for root in roots:
        add(tree, root)
    return tree


def span_line(record: dict[str, Any]) -> str:
    """One span as one line of Rich markup, for `tail` (which the terminal wraps: one span, one line)."""
    from rich.markup import escape

    end = float(record.get("end") or record.get("start") or 0.0)
    clock = time.strftime("%H:%M:%S", time.localtime(end)) + f".{int(end % 1 * 1000):03d}"
    messages = "; ".join(str(m.get("message", "")) for m in record.get("messages") or ())
    error = f" [red]✗ {escape(str(record['error']))}[/]" if record.get("error") else ""
    return (f"[dim]{clock}[/] {escape(str(record['trace_id']))} {escape(str(record['span_id']))} "
            f"{_span_label(record, None)}{error}" + (f" [cyan]\\[{escape(messages)}][/]" if messages else ""))


def _span_label(record: dict[str, Any], origin: float | None) -> str:
    from rich.markup import escape

    label = f"[bold]{escape(str(record['name']))}[/] {float(record.get('duration_ms') or 0.0):.1f} ms"
    if origin is not None:
        label += f" [dim]at +{(float(record.get('start') or origin) - origin) * 1000:.1f} ms[/]"
    return label + f"[dim]{escape(_attributes(record.get('attributes')))}[/]"


def _attributes(attributes: dict[str, Any] | None) -> str:
    return "".join(f" {key}={value}" for key, value in (attributes or {}).items())


def _count(nodes: list[Any]) -> int:
    return sum(1 + _count(node.children) for node in nodes)
