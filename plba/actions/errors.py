"""Why an action did not run: each error carries the HTTP status it answers with and one line saying why."""

from __future__ import annotations

from typing import Any

from plba.errors import PlbaError


class ActionError(PlbaError, exit_code=2):
    """An action refused or failed for a reason the caller can act on; each kind names its HTTP status."""

    status: int = 400

    def __init_subclass__(cls, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        # More JSON fields for the answer (a reload's list of problems, say).
        self.extra = extra


class InvalidParams(ActionError, status=400):
    """A parameter is missing, unknown, of the wrong type or out of its limits: nothing was done."""


class UnknownTarget(ActionError, status=404):
    """The action's target (a queue, an instance, a schedule, an action name) does not exist."""


class NotNow(ActionError, status=409):
    """The action does not fit the current state (start while running, stop while stopped)."""


class Unprocessable(ActionError, status=422):
    """The parameters are well formed but cannot be applied (an invalid new configuration)."""


class Unsupported(ActionError, status=409):
    """The target cannot do this (a queue backend without pause, say)."""
