"""Fixtures for the tracing tests: a trace service writing to a list, and JSON logs captured in memory."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from plba.logs import configure_logging
from plba.tracing import TraceService, TraceTransport


class ListTransport(TraceTransport):
    """Keeps every record it is given, for assertions."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        """Keep the record (list.append is atomic, so threads may emit at once)."""
        self.records.append(record)

    def named(self, name: str) -> list[dict[str, Any]]:
        """The records of spans called `name`."""
        return [r for r in self.records if r["name"] == name]


class JsonLog:
    """The root logger writing JSON lines into memory."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        """Every line written so far, parsed (a line that is not JSON fails the test here)."""
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def messages(self, text: str) -> list[dict[str, Any]]:
        """The lines whose message contains `text`."""
        return [line for line in self.lines() if text in line["message"]]


@pytest.fixture
def records() -> ListTransport:
    """A transport that keeps records in a list."""
    return ListTransport()


@pytest.fixture
def traces(records: ListTransport) -> TraceService:
    """A trace service emitting into `records`."""
    return TraceService(records)


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level restored after the test reconfigures it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def json_log(root_logger: logging.Logger) -> JsonLog:
    """JSON logging to memory at INFO, as `[log] format = "json"` sets it up."""
    log = JsonLog()
    configure_logging("INFO", "json", log.stream)
    return log
