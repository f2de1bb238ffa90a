"""One error family for the runtime, each kind mapped to a CLI exit code."""

from __future__ import annotations

from typing import Any


class PlbaError(Exception):
    """Base class of every error the runtime raises on purpose; a kind names its exit code in its class line."""

    exit_code: int = 1

    def __init_subclass__(cls, exit_code: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code


class ProblemsError(PlbaError):
    """An error made of one or more problems, each one line naming what is at fault."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class ConfigError(ProblemsError, exit_code=2):
    """Configuration that cannot be read or does not validate; lists every problem."""


class UsageError(PlbaError, exit_code=2):
    """A command used in a way that cannot work (bad option, nothing listening)."""


class PluginError(ProblemsError, exit_code=3):
    """A selected plugin failed to import or register."""


class QueueFullError(PlbaError):
    """A bounded queue stayed full for the whole publish timeout."""


class UnsupportedQueueOperation(UsageError):
    """An optional queue operation (requeue, purge, pause, ...) that the queue's backend does not offer."""


class QueueUnavailableError(PlbaError, exit_code=2):
    """A queue backend cannot be reached."""


# 75 is EX_TEMPFAIL: a service manager restarts it, unlike 2 and 3.
class StartupTimeoutError(PlbaError, exit_code=75):
    """A broker stayed unreachable for the whole `platform.startup_timeout`; worth restarting later."""


class StateError(PlbaError, exit_code=2):
    """An action that does not fit the runtime's current state (start while running, ...)."""


class ControlPlaneError(PlbaError, exit_code=2):
    """The HTTP control plane cannot listen, or a command cannot reach or use one."""


class DatabaseError(PlbaError, exit_code=2):
    """The platform database cannot be opened, read or written (locked, unwritable, newer schema)."""
