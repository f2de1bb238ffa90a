"""What a plugin registers: a named routine with its timing, and the settings that override it by name."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plba.config_checks import where
from plba.errors import ConfigError
from plba.schedule.timing import Timing
from plba.schema import SCHEDULE_PREFIX

logger = logging.getLogger("plba.schedule")

MISFIRE_POLICIES = ("once", "skip")
OVERRIDE_KEYS = ("every", "cron", "timezone", "enabled")


@dataclass(frozen=True)
class Firing:
    """One call of a routine: the schedule's name and the slot it stands for (aware, in the schedule's timezone).

    `manual` is True for a run asked for through `POST /actions/schedules/<name>/run`.
    """

    name: str
    scheduled_at: datetime
    manual: bool = False


@dataclass(frozen=True)
class Schedule:
    """A routine called with a `Firing` at each slot of its timing (and at start with `at_start`)."""

    name: str
    routine: Callable[[Firing], Any]
    timing: Timing
    misfire: str = "once"
    critical: bool = False
    enabled: bool = True
    at_start: bool = False

    @classmethod
    def define(cls, name: str, routine: Callable[[Firing], Any], *, every: float | None = None,
               cron: str | None = None, timezone: str = "UTC", misfire: str = "once",
               critical: bool = False, at_start: bool = False) -> Schedule:
        """A checked schedule; ValueError names the schedule and what is wrong."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a schedule needs a non-empty name, not {name!r}")
        if not callable(routine):
            raise ValueError(f"schedule {name!r}: the routine must be callable")
        if misfire not in MISFIRE_POLICIES:
            raise ValueError(f"schedule {name!r}: misfire must be 'once' or 'skip', not {misfire!r}")
        try:
            timing = Timing(every, cron, timezone)
        except ValueError as exc:
            raise ValueError(f"schedule {name!r}: {exc}") from None
        return cls(name, routine, timing, misfire, bool(critical), at_start=bool(at_start))

    def overridden(self, table: Any, where: str) -> Schedule:
        """This schedule with a `[platform.schedules."<name>"]` table applied; ConfigError lists every problem."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: must be a table with {', '.join(OVERRIDE_KEYS)}")
        problems = [f"{where}.{key}: unknown key (known: {', '.join(OVERRIDE_KEYS)})"
                    for key in table if key not in OVERRIDE_KEYS]
        enabled = table.get("enabled", self.enabled)
        if not isinstance(enabled, bool):
            problems.append(f"{where}.enabled: must be true or false, not {enabled!r}")
        if "every" in table and "cron" in table:
            problems.append(f"{where}: set every or cron, not both")
        every, cron = self.timing.every, self.timing.cron
        if "every" in table:
            every, cron = table["every"], None
        elif "cron" in table:
            every, cron = None, table["cron"]
        timing = self.timing
        if not problems:
            try:
                timing = Timing(every, cron, table.get("timezone", self.timing.timezone))
            except ValueError as exc:
                # Timing's messages start with the field at fault ("cron '...' is not valid"): name its key.
                field = str(exc).split(" ", 1)[0]
                problems.append(f"{where}.{field}: {exc}" if field in OVERRIDE_KEYS else f"{where}: {exc}")
        if problems:
            raise ConfigError(problems)
        return dataclasses.replace(self, timing=timing, enabled=enabled)


def override_tables(settings: Any) -> dict[str, Any]:
    """`{schedule name: override table}` from `[platform.schedules]`, names in lower case.

    A name with dots may arrive as nested tables (`[platform.schedules.acme.report]` unquoted, or
    `PLBA_PLATFORM__SCHEDULES__ACME.REPORT__EVERY`): a table in a table under a key that is not an
    override key is the rest of a longer name, split off and joined back with its parts.
    """
    tables: dict[str, Any] = {}

    def collect(name: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            tables[name.lower()] = value
            return
        own = {}
        for key, part in value.items():
            if isinstance(part, Mapping) and key not in OVERRIDE_KEYS:
                collect(f"{name}.{key}", part)
            else:
                own[key] = part
        if own or not value:
            tables[name.lower()] = own

    for key, value in (settings.get(SCHEDULE_PREFIX) or {}).items():
        collect(str(key), value)
    return tables


def override_problems(settings: Any, origin_of: Callable[[str], str | None]) -> list[str]:
    """Every problem in the `[platform.schedules."<name>"]` tables, found without the schedules they name.

    A `ConfigurationManager` check (`add_check`), so `plba config check` and the start list them with
    the rest, each line ending with where its table came from. Unknown keys are left to the
    configuration's own typo check, which names the nearest known key.
    """
    stand_in = Schedule.define("stand-in", lambda _firing: None, every=60)
    problems: list[str] = []
    for name, table in override_tables(settings).items():
        known = {key: value for key, value in table.items() if key in OVERRIDE_KEYS} \
            if isinstance(table, Mapping) else table
        try:
            stand_in.overridden(known, f'{SCHEDULE_PREFIX}."{name}"')
        except ConfigError as exc:
            origin = where(origin_of(f"{SCHEDULE_PREFIX}.{name}"))
            problems.extend(f"{problem}{origin}" for problem in exc.problems)
    return problems


def apply_overrides(schedules: list[Schedule], settings: Any) -> list[Schedule]:
    """The schedules with their `[platform.schedules."<name>"]` tables applied (names match in any case).

    A table naming no registered schedule is logged as a warning; bad values raise ConfigError,
    every problem listed.
    """
    tables = override_tables(settings)
    problems: list[str] = []
    result = []
    for schedule in schedules:
        table = tables.pop(schedule.name.lower(), None)
        if table is None:
            result.append(schedule)
            continue
        try:
            result.append(schedule.overridden(table, f'{SCHEDULE_PREFIX}."{schedule.name}"'))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    known = ", ".join(s.name for s in schedules) or "none"
    for name in tables:
        logger.warning(f'{SCHEDULE_PREFIX}."%s": no plugin registers a schedule of that name (registered: %s)',
                       name, known)
    return result
