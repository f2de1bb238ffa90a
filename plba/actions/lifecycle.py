"""The runtime's own actions: stop, start and reload."""

from __future__ import annotations

import logging
import threading
from typing import Any

from plba.actions.errors import NotNow, Unprocessable
from plba.actions.params import Param, boolean, number
from plba.actions.registry import PLATFORM_ACTIONS, Invocation
from plba.errors import PlbaError, ProblemsError

logger = logging.getLogger("plba.actions")

# A stop may be given a drain budget of at most a day; more is a typo (and overflows thread joins).
MAX_TIMEOUT = 86_400.0
STOP_PARAMS = (
    Param("force", boolean(), "true: do not drain, give in-flight tasks back at once", default=False),
    Param("timeout", number(0, MAX_TIMEOUT, nullable=True),
          "drain budget in seconds; null: platform.shutdown_timeout"),
)


@PLATFORM_ACTIONS.action("stop", role="operator", route="stop", params=STOP_PARAMS, status=202)
def stop(call: Invocation) -> dict[str, Any]:
    """Stop gracefully (or at once with force): accepted at once, the drain runs in the background."""
    force, timeout = call.params["force"], call.params["timeout"]
    runtime, state = call.runtime, call.state
    with state.lock:
        current = runtime.state
        if current in ("not_started", "stopped"):
            raise NotNow(f"the runtime is already {current}")
        # Under `run()` this wakes the foreground thread, which exits the process after the drain. A
        # forced request during a drain cuts it short, like a second Ctrl-C.
        runtime.request_stop(force=force, timeout=timeout)
        if current != "stopping" and not (state.stop_thread and state.stop_thread.is_alive()):
            # An embedded runtime has nobody waiting on the request, so the drain runs here too. Under
            # `run()` both threads call stop(); the lifecycle lock lets one drain and the other return.
            state.stop_thread = threading.Thread(target=_stop_quietly, args=(runtime, timeout, force),
                                                 name="plba-action-stop")
            state.stop_thread.start()
    return {"accepted": "stop", "force": force, "timeout": timeout}


@PLATFORM_ACTIONS.action("start", role="operator", route="start", status=202)
def start(call: Invocation) -> dict[str, Any]:
    """Start a stopped runtime again."""
    runtime = call.runtime
    if runtime.state not in ("stopped", "not_started"):
        raise NotNow(f"the runtime is already {runtime.state}")
    try:
        runtime.start()
    except PlbaError as exc:
        raise NotNow(f"the runtime cannot start: {exc}") from None
    return {"accepted": "start", "state": runtime.state}


@PLATFORM_ACTIONS.action("reload", role="operator", route="reload")
def reload(call: Invocation) -> dict[str, Any]:
    """Re-read the configuration; the changed keys, or every problem while the current one stays in force."""
    try:
        changed = call.runtime.reload()
    except ProblemsError as exc:
        raise Unprocessable("the new configuration is invalid; the current one stays in force",
                            problems=exc.problems) from None
    return {"changed": changed}


def _stop_quietly(runtime: Any, timeout: float | None, force: bool) -> None:
    try:
        runtime.stop(timeout=timeout, force=force)
    except Exception:  # noqa: BLE001 - nobody waits on this thread, so the log is the only place to say it
        logger.exception("stop requested as an action failed")
