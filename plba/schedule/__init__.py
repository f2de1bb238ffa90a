"""Schedules: routines a plugin registers with `registry.schedule(...)`, fired once per slot in the fleet."""

from __future__ import annotations

from typing import Any

from plba.cluster import ClusterStore
from plba.schedule.definition import Firing, Schedule, apply_overrides, override_problems
from plba.schedule.scheduler import Scheduler
from plba.tracing.service import TraceService

__all__ = ["Firing", "Schedule", "Scheduler", "apply_overrides", "build_scheduler", "override_problems"]


def build_scheduler(schedules: list[Schedule], settings: Any, store: ClusterStore,
                    traces: TraceService) -> Scheduler | None:
    """The scheduler worker for `schedules` with their settings overrides applied; None when there are none.

    Raises ConfigError for bad `[platform.schedules."<name>"]` values.
    """
    schedules = apply_overrides(schedules, settings)
    return Scheduler(schedules, store, traces) if schedules else None
