"""The scheduler on a fake clock: cron slots, catch-up after a gap, skipped overlaps, failures and traces."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from plba.cluster.memory import InProcessClusterStore
from plba.schedule import Schedule, Scheduler
from plba.testing import wait_until
from plba.tracing import TraceService
from tests.schedule.support import FakeClock, Recorder, Spans, entry, tick

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def started() -> Iterator[list[Scheduler]]:
    """Schedulers a test started, stopped afterwards."""
    schedulers: list[Scheduler] = []
    yield schedulers
    for scheduler in schedulers:
        scheduler.stop()
        scheduler.join(5)


def start(started: list[Scheduler], clock: FakeClock, *schedules: Schedule,
          store: InProcessClusterStore | None = None, traces: TraceService | None = None) -> Scheduler:
    scheduler = Scheduler(list(schedules), store or InProcessClusterStore("test"), traces or TraceService(), clock)
    scheduler.start()
    started.append(scheduler)
    return scheduler


def test_a_cron_schedule_fires_at_its_local_times(started) -> None:
    # Given a nightly 02:00 Berlin schedule and a clock at 01:59:59 Berlin time
    routine = Recorder()
    clock = FakeClock(datetime(2024, 5, 1, 1, 59, 59, tzinfo=BERLIN))
    scheduler = start(started, clock, Schedule.define("acme.nightly", routine, cron="0 2 * * *",
                                                      timezone="Europe/Berlin"))
    wait_until(lambda: entry(scheduler, "acme.nightly")["next_run"], message="a planned run")
    assert entry(scheduler, "acme.nightly")["next_run"] == "2024-05-01T02:00:00+02:00"
    # When the clock passes 02:00, then the routine fires once for that slot, in Berlin time
    tick(scheduler, clock, seconds=1.5)
    wait_until(lambda: entry(scheduler, "acme.nightly")["runs"] == 1, message="the first run")
    assert [f.scheduled_at for f in routine.firings] == [datetime(2024, 5, 1, 2, 0, tzinfo=BERLIN)]
    assert routine.firings[0].scheduled_at.tzinfo == BERLIN
    # And a minute later nothing more fires; the next night it fires again
    tick(scheduler, clock, minutes=1)
    tick(scheduler, clock, hours=23, minutes=59)
    wait_until(lambda: entry(scheduler, "acme.nightly")["runs"] == 2, message="the second run")
    assert routine.firings[1].scheduled_at == datetime(2024, 5, 2, 2, 0, tzinfo=BERLIN)
    assert entry(scheduler, "acme.nightly")["next_run"] == "2024-05-03T02:00:00+02:00"


@pytest.mark.parametrize(("misfire", "catch_up"), [("once", 1), ("skip", 0)])
def test_slots_missed_while_stopped_get_one_catch_up_firing_or_none(started, misfire: str, catch_up: int) -> None:
    # Given a 10 s schedule that fired once, then was stopped for a minute
    routine = Recorder()
    store = InProcessClusterStore("test")
    clock = FakeClock(datetime(2024, 5, 1, 12, 0, 5, tzinfo=ZoneInfo("UTC")))
    schedule = Schedule.define("acme.sync", routine, every=10, misfire=misfire)
    first = start(started, clock, schedule, store=store)
    wait_until(lambda: entry(first, "acme.sync")["next_run"], message="a planned run")
    tick(first, clock, seconds=5)
    wait_until(lambda: len(routine.firings) == 1, message="the first firing")
    first.stop()
    assert first.join(5)
    clock.advance(seconds=61)
    # When it starts again
    second = start(started, clock, schedule, store=store)
    wait_until(lambda: entry(second, "acme.sync")["next_run"], message="a planned run")
    # (the catch-up run over, so that the next slot does not find it still going)
    wait_until(lambda: entry(second, "acme.sync")["runs"] == catch_up and not entry(second, "acme.sync")["running"],
               message="the catch-up over")
    tick(second, clock, seconds=9)
    wait_until(lambda: len(routine.firings) == 2 + catch_up, message="the next slot's firing")
    # Then the six missed slots made one catch-up firing for the latest of them (misfire="once"), or none,
    # before the next slot fired as planned
    utc = ZoneInfo("UTC")
    catch_ups = [datetime(2024, 5, 1, 12, 1, 10, tzinfo=utc)] * catch_up
    assert [f.scheduled_at for f in routine.firings] == [datetime(2024, 5, 1, 12, 0, 10, tzinfo=utc), *catch_ups,
                                                         datetime(2024, 5, 1, 12, 1, 20, tzinfo=utc)]


def test_an_at_start_schedule_fires_its_current_slot_at_start_once_in_the_fleet(started) -> None:
    # Given an hourly schedule asking to fire at start, and two instances sharing one store
    routine = Recorder()
    store = InProcessClusterStore("test")
    clock = FakeClock(datetime(2024, 5, 1, 12, 20, tzinfo=ZoneInfo("UTC")))
    schedule = Schedule.define("acme.poll", routine, every=3600, at_start=True)
    # When the first starts, Then it fires at once for the current slot, not an hour later
    first = start(started, clock, schedule, store=store)
    wait_until(lambda: entry(first, "acme.poll")["runs"] == 1, message="the firing at start")
    assert [f.scheduled_at for f in routine.firings] == [datetime(2024, 5, 1, 12, tzinfo=ZoneInfo("UTC"))]
    # And the second, started within the same slot, does not fire it again
    second = start(started, clock, schedule, store=store)
    second.stop()
    assert second.join(5)  # its start planning, and any routine it fired, are over
    assert len(routine.firings) == 1 and entry(second, "acme.poll")["runs"] == 0


def test_a_slot_whose_previous_run_still_runs_is_skipped_and_counted(started) -> None:
    # Given a 1 s schedule whose first run blocks
    routine = Recorder()
    routine.hold.clear()
    clock = FakeClock(datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=ZoneInfo("UTC")))
    scheduler = start(started, clock, Schedule.define("acme.slow", routine, every=1))
    wait_until(lambda: entry(scheduler, "acme.slow")["next_run"], message="a planned run")
    tick(scheduler, clock, seconds=1)
    wait_until(lambda: entry(scheduler, "acme.slow")["running"], message="the first run")
    assert scheduler.status().state == "busy"
    # When the next two slots come while it runs
    tick(scheduler, clock, seconds=1)
    wait_until(lambda: entry(scheduler, "acme.slow")["skipped"] == 1, message="a skipped slot")
    tick(scheduler, clock, seconds=1)
    wait_until(lambda: entry(scheduler, "acme.slow")["skipped"] == 2, message="a second skipped slot")
    # Then they are skipped and counted, and the routine was entered once
    assert len(routine.firings) == 1
    routine.hold.set()
    wait_until(lambda: entry(scheduler, "acme.slow")["last_outcome"] == "ok", message="the run to end")
    assert scheduler.outcomes()["acme.slow"] == {"ok": 1, "failed": 0, "skipped": 2}


@pytest.mark.parametrize(("critical", "level"), [(False, "degraded"), (True, "unhealthy")])
def test_three_failures_in_a_row_degrade_the_schedule_and_each_firing_is_a_trace(started, critical, level) -> None:
    # Given a 1 s schedule whose routine raises, and traces kept in a list
    routine = Recorder()
    routine.fail = True
    spans = Spans()
    clock = FakeClock(datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=ZoneInfo("UTC")))
    scheduler = start(started, clock, Schedule.define("acme.report", routine, every=1, critical=critical),
                      traces=TraceService(spans))
    wait_until(lambda: entry(scheduler, "acme.report")["next_run"], message="a planned run")
    check = scheduler.health_check("acme.report")
    # When it fails twice, then it is still ok
    for failures in (1, 2):
        tick(scheduler, clock, seconds=1)
        wait_until(lambda n=failures: entry(scheduler, "acme.report")["failures"] == n, message=f"failure {failures}")
    assert check().status == "ok"
    # When it fails a third time in a row, then it is degraded (unhealthy when critical), naming the error
    tick(scheduler, clock, seconds=1)
    wait_until(lambda: entry(scheduler, "acme.report")["failures"] == 3, message="the third failure")
    assert check().status == level
    assert "RuntimeError: report server down" in check().detail
    assert entry(scheduler, "acme.report")["last_error"] == "RuntimeError: report server down"
    # And each firing was a trace of its own, carrying the error
    wait_until(lambda: len(spans.records) == 3, message="three spans")
    assert {r["name"] for r in spans.records} == {"schedule acme.report"}
    assert len({r["trace_id"] for r in spans.records}) == 3
    assert all(r["error"] == "RuntimeError: report server down" for r in spans.records)
    # When it succeeds again, then it is ok again
    routine.fail = False
    tick(scheduler, clock, seconds=1)
    wait_until(lambda: entry(scheduler, "acme.report")["last_outcome"] == "ok", message="a good run")
    assert check().status == "ok"


def test_a_manual_run_fires_once_and_a_repeat_in_the_same_second_is_refused(started) -> None:
    # Given an hourly schedule
    routine = Recorder()
    clock = FakeClock(datetime(2024, 5, 1, 12, 30, 0, tzinfo=ZoneInfo("UTC")))
    scheduler = start(started, clock, Schedule.define("acme.hourly", routine, every=3600))
    wait_until(lambda: scheduler.status().state == "idle", message="started")
    # When it is run by hand twice in one second
    first = scheduler.run_now("acme.hourly")
    second = scheduler.run_now("acme.hourly")
    # Then it fired once, marked manual
    assert first[0] == "started" and first[1].manual is True
    assert second[0] in ("duplicate", "running")
    wait_until(lambda: entry(scheduler, "acme.hourly")["runs"] == 1, message="the manual run")
    assert [f.manual for f in routine.firings] == [True]
    with pytest.raises(KeyError):
        scheduler.run_now("acme.nope")


def test_the_night_the_clocks_go_back_a_fixed_time_fires_once_and_a_half_hourly_one_every_half_hour(started) -> None:
    # Given a nightly 02:30 and a half-hourly Berlin schedule, ten minutes before midnight UTC on the
    # night Berlin's clocks go back from 03:00 summer time to 02:00 winter time
    nightly, half_hourly = Recorder(), Recorder()
    clock = FakeClock(datetime(2026, 10, 24, 23, 50, tzinfo=UTC))
    scheduler = start(started, clock,
                      Schedule.define("acme.nightly", nightly, cron="30 2 * * *", timezone="Europe/Berlin"),
                      Schedule.define("acme.half", half_hourly, cron="*/30 * * * *", timezone="Europe/Berlin"))
    wait_until(lambda: entry(scheduler, "acme.half")["next_run"], message="a planned run")
    # When four hours pass in steps of ten minutes
    for step in range(1, 25):
        tick(scheduler, clock, minutes=10)
        passed = (step + 2) // 3  # half-hour slots from 00:00 UTC up to now
        wait_until(lambda passed=passed: entry(scheduler, "acme.half")["runs"] == passed,
                   message=f"{passed} half-hourly runs")
    # Then the half-hourly one fired every half hour of real time, in both passes of the repeated hour
    assert [f.scheduled_at.isoformat()[11:] for f in half_hourly.firings] == [
        "02:00:00+02:00", "02:30:00+02:00", "02:00:00+01:00", "02:30:00+01:00",
        "03:00:00+01:00", "03:30:00+01:00", "04:00:00+01:00", "04:30:00+01:00"]
    # And the nightly one fired once, at the first 02:30
    assert [f.scheduled_at.isoformat() for f in nightly.firings] == ["2026-10-25T02:30:00+02:00"]
    assert entry(scheduler, "acme.nightly")["next_run"] == "2026-10-26T02:30:00+01:00"
