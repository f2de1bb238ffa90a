"""Helpers for the schedule tests: a fake clock, a recording routine, a span list, readings."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from plba.schedule import Firing, Scheduler
from plba.tracing import TraceTransport


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Spans(TraceTransport):
    """Keeps every span record."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)


class Recorder:
    """A routine that records its firings; it raises while `fail` is set and blocks while `hold` is clear."""

    def __init__(self) -> None:
        self.firings: list[Firing] = []
        self.fail = False
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self, firing: Firing) -> None:
        self.firings.append(firing)
        self.hold.wait(30)
        if self.fail:
            raise RuntimeError("report server down")


def tick(scheduler: Scheduler, clock: FakeClock, **delta: float) -> None:
    """Move the clock and have the scheduler look at it."""
    clock.advance(**delta)
    scheduler.wake()


def entry(scheduler: Scheduler, name: str) -> dict[str, Any]:
    return next(e for e in scheduler.schedules() if e["name"] == name)
