"""Reading what the jsonl transport wrote: one trace as a tree of spans, or new spans as they arrive."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TraceNotFound(LookupError):
    """No trace (or more than one) in the file matches the id given."""


@dataclass
class SpanNode:
    """One span record and the spans started inside it, earliest first."""

    record: dict[str, Any]
    children: list[SpanNode] = field(default_factory=list)


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """The span record on one line; None for a blank, malformed or non-span line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not {"trace_id", "span_id", "name"} <= record.keys():
        return None
    return record


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every span record in the file, in the order written; lines that are not records are skipped."""
    with Path(path).open("rb") as file:
        for line in file:
            record = parse_line(line)
            if record is not None:
                yield record


def trace_records(path: str | Path, trace_id: str) -> list[dict[str, Any]]:
    """The records of one trace, given its full id or a prefix matching a single trace."""
    wanted = trace_id.strip().lower()
    found: dict[str, list[dict[str, Any]]] = {}
    for record in read_records(path):
        if str(record["trace_id"]).startswith(wanted):
            found.setdefault(record["trace_id"], []).append(record)
    if wanted in found:
        return found[wanted]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise TraceNotFound(f"trace {trace_id} not found in {path}")
    raise TraceNotFound(f"trace id {trace_id} is ambiguous in {path}: it starts {len(found)} traces")


def build_tree(records: Iterable[dict[str, Any]]) -> list[SpanNode]:
    """The spans as trees, earliest first; a span whose parent is not among them is a root.

    Parents can be missing: the producer's span may live in another process's file, or not be written yet.
    """
    nodes = {record["span_id"]: SpanNode(record) for record in records}
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = nodes.get(node.record.get("parent_id"))
        (parent.children if parent is not None and parent is not node else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=_start)
    return sorted(roots, key=_start)


class Follower:
    """Reads records appended to a jsonl file, like `tail -f`; opened (and positioned) on creation.

    A line is read only once complete, so a record being written is never seen half-way; a file
    that is truncated or replaced (log rotation) is read again from its beginning.
    """

    def __init__(self, path: str | Path, from_start: bool = False, poll_interval: float = 0.2) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._file, self._identity = _open(self.path)
        if not from_start:
            self._file.seek(0, os.SEEK_END)

    def records(self, stop: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Yield each new record as it is written, until `stop` is set."""
        stop = stop or threading.Event()
        pending = b""
        while not stop.is_set():
            chunk = self._file.readline()
            if chunk:
                pending += chunk
                if pending.endswith(b"\n"):
                    record = parse_line(pending)
                    pending = b""
                    if record is not None:
                        yield record
                continue
            if _replaced(self.path, self._identity, self._file.tell()):
                self._file.close()
                self._file, self._identity = _open(self.path)
                pending = b""
                continue
            stop.wait(self.poll_interval)

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _open(path: Path) -> tuple[Any, tuple[int, int]]:
    file = path.open("rb")
    stat = os.fstat(file.fileno())
    return file, (stat.st_dev, stat.st_ino)


def _replaced(path: Path, identity: tuple[int, int], position: int) -> bool:
    """True when the path now names another file, or the file shrank below what was read."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False  # rotated away and not recreated yet: keep waiting on the old one
    return (stat.st_dev, stat.st_ino) != identity or stat.st_size < position


def _start(node: SpanNode) -> float:
    return float(node.record.get("start") or 0.0)
