"""Slots of a schedule: every N seconds aligned to the epoch, cron in a timezone, and clear errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from plba.schedule.timing import Timing

BERLIN = ZoneInfo("Europe/Berlin")


def test_every_slots_are_multiples_of_the_interval_so_every_instance_agrees() -> None:
    # Given a 15 s schedule, when two instances look at nearby moments
    timing = Timing(every=15, cron=None)
    one = timing.next_after(datetime(2024, 5, 1, 12, 0, 7, tzinfo=UTC))
    other = timing.next_after(datetime(2024, 5, 1, 12, 0, 14, 999000, tzinfo=UTC))
    # Then both find the same next slot, and the latest slot at or before it is itself
    assert one == other == datetime(2024, 5, 1, 12, 0, 15, tzinfo=UTC)
    assert timing.latest_at_or_before(one) == one
    assert timing.next_after(one) == datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


def test_cron_slots_follow_the_wall_clock_of_the_timezone_across_daylight_saving() -> None:
    # Given a nightly 02:00 schedule in Berlin, the night before the clocks go forward
    timing = Timing(every=None, cron="0 2 * * *", timezone="Europe/Berlin")
    start = datetime(2024, 3, 30, 12, 0, tzinfo=BERLIN)
    # When its next slots are computed
    first = timing.next_after(start)
    second = timing.next_after(first)
    # Then they are at 02:00 local time (the missing hour on 31 March moves to 03:00), shown in Berlin time
    assert first == datetime(2024, 3, 31, 3, 0, tzinfo=BERLIN)
    assert second == datetime(2024, 4, 1, 2, 0, tzinfo=BERLIN)
    assert timing.local(second).isoformat() == "2024-04-01T02:00:00+02:00"
    assert timing.period_after(second) == 86400


def test_a_fixed_time_in_the_hour_the_clocks_go_back_over_falls_once_and_a_wildcard_one_in_both_passes() -> None:
    # Given the night Berlin's clocks go back from 03:00 CEST to 02:00 CET
    night = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    # When a nightly 02:30 schedule's slots are computed
    nightly = Timing(every=None, cron="30 2 * * *", timezone="Europe/Berlin")
    first = nightly.next_after(night)
    # Then it falls once, at the first 02:30 (summer time), and next on the following night
    assert nightly.local(first).isoformat() == "2026-10-25T02:30:00+02:00"
    assert nightly.next_after(first) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)
    assert nightly.period_after(first) == 25 * 3600
    # And looking back from the second 02:45 finds that first 02:30, not the skipped second one
    assert nightly.latest_at_or_before(datetime(2026, 10, 25, 1, 45, tzinfo=UTC)) == first
    # While a half-hourly schedule falls in both passes of the repeated hour, every 30 minutes of real time
    half_hourly = Timing(every=None, cron="*/30 * * * *", timezone="Europe/Berlin")
    slots = [half_hourly.next_after(night)]
    while len(slots) < 8:
        slots.append(half_hourly.next_after(slots[-1]))
    assert [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)] == [1800] * 7


@pytest.mark.parametrize(("cron", "wall", "passes"), [("*/30 2 * * *", "02:30", 2), ("0,30 2 * * *", "02:30", 1),
                                                       ("@hourly", "02:00", 2), ("30 2 * * * 0", "02:30", 1)])
def test_a_field_written_from_a_star_fires_in_both_passes_of_the_repeated_hour_as_cron_does(cron, wall,
                                                                                          passes) -> None:
    # Given the night Berlin's clocks go back, when the slots up to 03:00 winter time are listed
    timing = Timing(every=None, cron=cron, timezone="Europe/Berlin")
    slots, moment = [], datetime(2026, 10, 24, 23, 59, tzinfo=UTC)
    while (moment := timing.next_after(moment)) < datetime(2026, 10, 25, 2, 0, tzinfo=UTC):
        slots.append(timing.local(moment).isoformat()[11:16])
    # Then the slot falls once per pass of the repeated hour when its minute or hour is written from a `*`
    assert slots.count(wall) == passes


@pytest.mark.parametrize(("every", "cron", "timezone", "message"), [
    (None, None, "UTC", "give exactly one of every"),
    (5, "* * * * *", "UTC", "give exactly one of every"),
    (0, None, "UTC", "every must be a number of seconds"),
    ("5", None, "UTC", "every must be a number of seconds"),
    (None, "61 * * * *", "UTC", "cron '61 * * * *' is not a valid cron expression"),
    (None, "0 2 * * *", "Mars/Olympus", "timezone 'Mars/Olympus' is not a known IANA timezone"),
])
def test_bad_timings_are_refused_with_what_is_wrong(every, cron, timezone, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Timing(every, cron, timezone)
