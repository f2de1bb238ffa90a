"""What every command shares: exit codes, the error console, and turning errors into one line."""

from __future__ import annotations

import contextlib
import enum
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import typer

from plba.errors import PlbaError, ProblemsError, UsageError

if TYPE_CHECKING:
    from plba.plugins import PluginSet


class ExitCode(enum.IntEnum):
    """The exit codes of `plba` (see DESIGN.md)."""

    OK = 0
    RUNTIME_FAILED = 1
    USAGE = 2
    PLUGIN_FAILED = 3


class State:
    """Options given before the command (`plba --debug ...`)."""

    debug = False


def error_lines(exc: BaseException) -> list[str]:
    """The lines to print for an error: one per problem."""
    if isinstance(exc, ProblemsError):
        return list(exc.problems)
    return [str(exc) or type(exc).__name__]


def fail(message: str | list[str], code: int) -> NoReturn:
    """Print `error: ...` lines on stderr and exit with `code`."""
    for line in [message] if isinstance(message, str) else message:
        sys.stderr.write(f"error: {line}\n")
    raise typer.Exit(int(code))


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn PLBA errors into their one-line messages and exit codes; tracebacks only with --debug."""
    try:
        yield
    except PlbaError as exc:
        if State.debug:
            raise
        fail(error_lines(exc), exc.exit_code)


def select_plugins(names: list[str] | None) -> PluginSet:
    """Discover the plugins named by `--plugin` (else `PLBA_LOAD_PLUGINS`, else all); others are disabled.

    UsageError when a name is not installed, listing the names that are.
    """
    from plba.plugins import PluginSet, selection_from_env

    selection = set(names) if names else selection_from_env()
    plugins = PluginSet()
    plugins.discover(selection)
    unknown = plugins.unknown(selection or ())
    if unknown:
        installed = ", ".join(sorted(info.name for info in plugins.infos)) or "none"
        missing = ", ".join(repr(name) for name in unknown)
        subject = f"plugin {missing} is" if len(unknown) == 1 else f"plugins {missing} are"
        raise UsageError(f"{subject} not installed (installed: {installed})")
    return plugins
