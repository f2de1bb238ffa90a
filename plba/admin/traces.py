"""A trace for the console: the span tree from the jsonl transport's file, or a note saying why there is none."""

from __future__ import annotations

import re
from typing import Any

from plba.tracing.reader import SpanNode, TraceNotFound, build_tree, trace_records

TRACE_ID = re.compile(r"[0-9a-fA-F]{4,32}")


def trace_tree(settings: Any, trace_id: str) -> tuple[list[SpanNode], str | None]:
    """The roots of the trace's span tree and None, or no roots and a one-line note."""
    if not TRACE_ID.fullmatch(trace_id):
        return [], "a trace id is 4 to 32 hexadecimal digits"
    if settings.get("platform.tracing.transport") != "jsonl":
        return [], ("traces are kept only with platform.tracing.transport = \"jsonl\"; this runtime uses "
                    f"{settings.get('platform.tracing.transport')!r}")
    path = str(settings.get("platform.tracing.path"))
    try:
        return build_tree(trace_records(path, trace_id)), None
    except TraceNotFound as exc:
        return [], str(exc)
    except OSError as exc:
        return [], f"cannot read {path}: {exc.strerror or exc}"
