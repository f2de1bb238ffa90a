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
    # Then they are at 02:00 local time (the missing hour on 31 March moves to 03:00), in Berlin time
    assert first == datetime(2024, 3, 31, 3, 0, tzinfo=BERLIN)
    assert second == datetime(2024, 4, 1, 2, 0, tzinfo=BERLIN)
    assert second.utcoffset().total_seconds() == 7200
    assert timing.period_after(second) == 86400


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
