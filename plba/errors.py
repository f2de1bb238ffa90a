"""One error family for the runtime, each kind mapped to a CLI exit code."""

from __future__ import annotations


class PlbaError(Exception):
    """Base class of every error the runtime raises on purpose."""

    exit_code = 1


class ProblemsError(PlbaError):
    """An error made of one or more problems, each one line naming what is at fault."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class ConfigError(ProblemsError):
    """Configuration that cannot be read or does not validate; lists every problem."""

    exit_code = 2


class UsageError(PlbaError):
    """A command used in a way that cannot work (bad option, nothing listening)."""

    exit_code = 2


class PluginError(ProblemsError):
    """A selected plugin failed to import or register."""

    exit_code = 3


class QueueFullError(PlbaError):
    """A bounded queue stayed full for the whole publish timeout."""


class UnsupportedQueueOperation(UsageError):
    """An optional queue operation (requeue, purge, pause, ...) that the queue's backend does not offer."""


class QueueUnavailableError(PlbaError):
    """A queue backend cannot be reached."""

    exit_code = 2


class StartupTimeoutError(PlbaError):
    """A broker stayed unreachable for the whole `platform.startup_timeout`; worth restarting later."""

    exit_code = 75  # EX_TEMPFAIL: a service manager restarts it, unlike 2 and 3


class StateError(PlbaError):
    """An action that does not fit the runtime's current state (start while running, ...)."""

    exit_code = 2


class ControlPlaneError(PlbaError):
    """The HTTP control plane cannot listen, or a command cannot reach or use one."""

    exit_code = 2


class DatabaseError(PlbaError):
    """The platform database cannot be opened, read or written (locked, unwritable, newer schema)."""

    exit_code = 2
