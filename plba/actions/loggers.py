"""Log levels at run time: read the platform's and plugins' loggers, set one for a while, and revert by itself."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from plba.actions.errors import UnknownTarget
from plba.actions.params import Param, choice, number, text
from plba.actions.registry import PLATFORM_ACTIONS, ActionState, Invocation
from plba.schema import LOG_LEVELS

logger = logging.getLogger("plba.actions")

ROOT = "root"
# A temporary level lasts at most a week; longer is a typo, and is what a settings change is for.
MAX_REVERT_AFTER = 7 * 86_400.0
LOGGER_PARAMS = (
    Param("logger", text(200, what="a logger name"), "the logger: `root`, `plba`, a plugin's name, or one below",
          required=True),
    Param("level", choice(LOG_LEVELS, case_insensitive=True), f"one of {', '.join(LOG_LEVELS)}", required=True),
    Param("revert_after", number(1, MAX_REVERT_AFTER, nullable=True),
          "seconds after which the old level returns by itself; null: until the next restart"),
)


def owners(runtime: Any) -> list[str]:
    """The logger names the platform and its loaded plugins own: `plba` and each plugin's name."""
    return ["plba", *(info.name for info in runtime.plugins.infos if info.status == "loaded")]


def known_loggers(runtime: Any) -> list[str]:
    """`root`, each owner, and every logger created so far below an owner, sorted."""
    roots = owners(runtime)
    created = [name for name in logging.Logger.manager.loggerDict
               if any(name.startswith(f"{owner}.") for owner in roots)]
    return [ROOT, *sorted({*roots, *created})]


def levels(runtime: Any, state: ActionState) -> dict[str, dict[str, Any]]:
    """Each known logger: its own level (None: inherited), the level in effect, and when a temporary one reverts."""
    with state.lock:
        reverts = dict(state.reverts)
    result = {}
    for name in known_loggers(runtime):
        target = _logger(name)
        revert = reverts.get(name)
        result[name] = {
            "level": logging.getLevelName(target.level) if target.level else None,
            "effective": logging.getLevelName(target.getEffectiveLevel()),
            "revert_at": None if revert is None else datetime.fromtimestamp(revert.at, UTC).isoformat(),
            "revert_to": None if revert is None else revert.level_name(),
        }
    return result


@PLATFORM_ACTIONS.action("loggers", role="operator", route="loggers", params=LOGGER_PARAMS)
def set_level(call: Invocation) -> dict[str, Any]:
    """Set a logger's level now, optionally for `revert_after` seconds only."""
    name, level, revert_after = call.params["logger"], call.params["level"], call.params["revert_after"]
    owned = owners(call.runtime)
    if name != ROOT and not any(name == owner or name.startswith(f"{owner}.") for owner in owned):
        raise UnknownTarget(f"logger {name!r} is not the platform's or a plugin's: use root or a name from "
                            f"{', '.join(owned)} (or one below it)")
    target = _logger(name)
    state = call.state
    with state.lock:
        pending = state.reverts.pop(name, None)
        if pending is not None:
            pending.timer.cancel()
        # A second change while one is pending keeps the level from before the first.
        previous = pending.previous if pending is not None else target.level
        target.setLevel(level)
        revert_at = None
        if revert_after is not None:
            revert_at = time.time() + revert_after
            timer = threading.Timer(revert_after, _revert, args=(state, name, target.level))
            timer.daemon = True
            timer.name = f"plba-logger-revert-{name}"
            state.reverts[name] = Revert(name, previous, revert_at, timer)
            timer.start()
    logger.info("logger %s set to %s%s", name, level,
                "" if revert_after is None else f" for {revert_after:g}s")
    return {"logger": name, "level": level, "previous": logging.getLevelName(previous) if previous else None,
            "revert_at": None if revert_at is None else datetime.fromtimestamp(revert_at, UTC).isoformat()}


class Revert:
    """A pending return of logger `name` to `previous` (0: inherit) at `at` (epoch seconds), run by `timer`."""

    def __init__(self, name: str, previous: int, at: float, timer: threading.Timer) -> None:
        self.name = name
        self.previous = previous
        self.at = at
        self.timer = timer

    def undo(self) -> None:
        """Cancel the timer and return to the old level now."""
        self.timer.cancel()
        _logger(self.name).setLevel(self.previous)

    def level_name(self) -> str | None:
        """The level it returns to, or None when the logger goes back to inheriting."""
        return logging.getLevelName(self.previous) if self.previous else None


def _revert(state: ActionState, name: str, set_to: int) -> None:
    target = _logger(name)
    with state.lock:
        pending = state.reverts.pop(name, None)
        if pending is None:
            return
        # A reload that rewrote the level since is newer than this change: it stays.
        if target.level == set_to:
            target.setLevel(pending.previous)
    logger.info("logger %s back to %s", name, pending.level_name() or "its parent's level")


def _logger(name: str) -> logging.Logger:
    return logging.getLogger() if name == ROOT else logging.getLogger(name)
