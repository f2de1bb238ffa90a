"""Why an action did not run: each error carries the HTTP status it answers with and one line saying why."""

from __future__ import annotations

from typing import Any

from plba.errors import PlbaError


class ActionError(PlbaError):
    """An action refused or failed for a reason the caller can act on; `status` is its HTTP status."""

    status = 400
    exit_code = 2

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        # More JSON fields for the answer (a reload's list of problems, say).
        self.extra = extra


class InvalidParams(ActionError):
    """A parameter is missing, unknown, of the wrong type or out of its limits: nothing was done."""

    status = 400


class UnknownTarget(ActionError):
    """The action's target (a queue, an instance, a schedule, an action name) does not exist."""

    status = 404


class NotNow(ActionError):
    """The action does not fit the current state (start while running, stop while stopped)."""

    status = 409


class Unprocessable(ActionError):
    """The parameters are well formed but cannot be applied (an invalid new configuration)."""

    status = 422


class Unsupported(ActionError):
    """The target cannot do this (a queue backend without pause, say)."""

    status = 409
