"""One registry of actions: every state-changing operation, declared once, invoked the same way by every caller.

Declare an action with `PLATFORM_ACTIONS.action(name, role=..., route=..., params=...)` on its
handler; run one with `runtime.actions.invoke(name, caller, target, params)`. See
`plba.actions.registry` for the flow (authorize, validate, handle, audit).
"""

from __future__ import annotations

from typing import Any

# Imported for what they declare: each module adds its actions to PLATFORM_ACTIONS.
from plba.actions import instances, lifecycle, loggers, queues, schedules, users  # noqa: F401
from plba.actions.errors import ActionError, InvalidParams, NotNow, UnknownTarget, Unprocessable, Unsupported
from plba.actions.params import Param
from plba.actions.registry import (
    FAILED,
    OK,
    PLATFORM_ACTIONS,
    REFUSED,
    REJECTED,
    ROLES,
    Action,
    ActionRegistry,
    Actions,
    Caller,
    Invocation,
    LocalCaller,
    RelayedCaller,
)

__all__ = ["FAILED", "OK", "PLATFORM_ACTIONS", "REFUSED", "REJECTED", "ROLES", "Action", "ActionError",
           "ActionRegistry", "Actions", "Caller", "InvalidParams", "Invocation", "LocalCaller", "NotNow", "Param",
           "RelayedCaller", "UnknownTarget", "Unprocessable", "Unsupported", "build_actions"]


def build_actions(runtime: Any) -> Actions:
    """The platform's actions bound to `runtime`, auditing into its platform database."""
    from plba.audit import AuditLog
    from plba.audit.database import DatabaseAuditStore

    max_events = int(runtime.settings.get("platform.audit.max_events", 100_000))
    return Actions(runtime, PLATFORM_ACTIONS, AuditLog(DatabaseAuditStore(lambda: runtime.database, max_events)))
