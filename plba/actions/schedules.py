"""The schedules' action: fire one once now, in the whole fleet."""

from __future__ import annotations

from typing import Any

from plba.actions.errors import NotNow, UnknownTarget
from plba.actions.registry import PLATFORM_ACTIONS, Invocation

# Why a schedule did not fire, by the scheduler's outcome.
NOT_RUN = {"running": "its previous run is still going", "duplicate": "it was run in this second already",
           "stopped": "the runtime is not running"}


@PLATFORM_ACTIONS.action("schedules.run", role="operator", route="schedules/<name>/run", target="schedule",
                         status=202)
def run(call: Invocation) -> dict[str, Any]:
    """Fire the schedule once now, in the whole fleet."""
    scheduler = call.runtime.scheduler
    if scheduler is None or call.target not in scheduler.names():
        raise UnknownTarget(f"no schedule named {call.target!r}")
    outcome, firing = scheduler.run_now(call.target)
    if firing is None:
        raise NotNow(f"schedule {call.target!r} not run: {NOT_RUN.get(outcome, outcome)}")
    return {"accepted": "run", "schedule": call.target, "scheduled_at": firing.scheduled_at.isoformat()}
