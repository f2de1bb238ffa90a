"""When a schedule's slots fall: every N seconds (aligned to the epoch) or a cron expression in a timezone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from croniter import croniter

ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Timing:
    """The slots of one schedule. Exactly one of `every` (seconds) and `cron` is set.

    `every` slots are multiples of the interval since the Unix epoch, so every instance of a
    fleet computes the same slots whenever it started. Cron slots come from croniter, in
    `timezone` (five fields, or six with seconds last). As cron does, a fixed-time slot falls once
    in the hour repeated when the clocks go back (at its first pass); a slot whose minute or hour
    field starts with `*` (`*`, `*/15`) falls in both passes, since its runs are meant to follow real time.

    Slots are given in UTC: Python compares and subtracts two times of one zone by their wall
    clocks, which is wrong across the hour the clocks go back over. `local()` shows one in `timezone`.
    """

    every: float | None
    cron: str | None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every (seconds) or cron")
        if self.every is not None:
            if isinstance(self.every, bool) or not isinstance(self.every, (int, float)) \
                    or not math.isfinite(self.every) or self.every < 0.001:
                raise ValueError(f"every must be a number of seconds of at least 0.001, not {self.every!r}")
        else:
            from croniter import croniter

            if not isinstance(self.cron, str) or not croniter.is_valid(self.cron):
                raise ValueError(f"cron {self.cron!r} is not a valid cron expression")
        try:
            ZoneInfo(str(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA timezone (e.g. 'Europe/Berlin')") \
                from None

    @property
    def zone(self) -> ZoneInfo:
        """The timezone slots are computed and reported in."""
        return ZoneInfo(self.timezone)

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after `moment` (an aware datetime)."""
        if self.every is not None:
            period = self._period_ms()
            return self._at((_ms(moment) // period + 1) * period)
        slots = self._croniter(moment)
        slot = slots.get_next(datetime)
        while self._repeated(slot):
            slot = slots.get_next(datetime)
        return slot.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last slot at or before `moment`."""
        if self.every is not None:
            period = self._period_ms()
            return self._at(_ms(moment) // period * period)
        slots = self._croniter(moment + ONE_MICROSECOND)
        slot = slots.get_prev(datetime)
        while self._repeated(slot):
            slot = slots.get_prev(datetime)
        return slot.astimezone(UTC)

    def period_after(self, slot: datetime) -> float:
        """Seconds from `slot` to the next one."""
        return (self.next_after(slot) - slot).total_seconds()

    def local(self, moment: datetime) -> datetime:
        """`moment` in the schedule's timezone, as firings and `/schedules` show it."""
        return moment.astimezone(self.zone)

    def describe(self) -> dict[str, object]:
        """`every`, `cron` and `timezone`, as `/schedules` shows them."""
        return {"every": self.every, "cron": self.cron, "timezone": self.timezone}

    def _period_ms(self) -> int:
        return max(1, round(float(self.every or 0) * 1000))

    def _repeated(self, slot: datetime) -> bool:
        """True for a fixed-time slot on the second pass of a wall time the clocks went back over."""
        first_pass, second_pass = slot.replace(fold=0).utcoffset(), slot.replace(fold=1).utcoffset()
        if first_pass == second_pass or slot.utcoffset() != second_pass:
            return False
        assert self.cron is not None, "only cron slots repeat"
        fields = self.cron.split()
        if fields[0].startswith("@"):  # @hourly and the like: their expansion says which fields are `*`
            from croniter import croniter

            fields = [str(values[0]) for values in croniter.expand(self.cron)[0][:2]]
        # As Vixie cron decides: a field written from `*` (`*`, `*/15`) follows real time.
        return not (fields[0].startswith("*") or fields[1].startswith("*"))

    def _at(self, ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    def _croniter(self, moment: datetime) -> croniter:
        from croniter import croniter

        assert self.cron is not None, "a timing without `every` has a cron expression"
        return croniter(self.cron, moment.astimezone(self.zone))


def _ms(moment: datetime) -> int:
    return math.floor(moment.timestamp() * 1000)
