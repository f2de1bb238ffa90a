"""`ClusterStoreContract`: what every cluster store guarantees, as tests each backend's test class inherits.

A subclass provides the fixture `make_store(owner)`: stores it makes share one fleet (the same
server and names), as the instances sharing `platform.cluster.url` do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from plba.cluster import ClusterStore
from plba.schedule import Firing, Schedule, Scheduler
from plba.testing import wait_until
from plba.tracing import TraceService
from tests.schedule.support import FakeClock, Recorder, entry, tick

MakeStore = Callable[[str], ClusterStore]
SLOT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at_once(count: int, action: Callable[[int], bool]) -> list[bool]:
    """Run `action(n)` for n in range(count) in as many threads, released together; their answers."""
    barrier = threading.Barrier(count)
    answers: list[bool] = [False] * count

    def run(n: int) -> None:
        barrier.wait()
        answers[n] = action(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


class ClusterStoreContract:
    """The `ClusterStore` contract; subclasses provide `make_store`."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        """Stores of one fleet, by owner; closed after the test."""
        raise NotImplementedError("a ClusterStoreContract subclass provides the make_store fixture")

    # -- claims ----------------------------------------------------------------------------

    def test_a_key_is_claimed_by_one_instance_until_it_expires(self, make_store: MakeStore) -> None:
        first, second = make_store("first"), make_store("second")
        # Given a key claimed for a moment, then nobody else gets it meanwhile
        assert first.claim("report:manual", 0.5)
        assert not second.claim("report:manual", 60)
        assert not first.claim("report:manual", 60)
        # When the claim runs out, then another instance takes it
        wait_until(lambda: second.claim("report:manual", 60), message="the expired claim taken over")
        assert not first.claim("report:manual", 60)

    def test_of_many_claiming_one_key_at_once_exactly_one_wins(self, make_store: MakeStore) -> None:
        stores = [make_store(f"instance-{n}") for n in range(8)]
        assert sum(at_once(8, lambda n: stores[n].claim("nightly:manual", 60))) == 1

    def test_a_renewed_claim_outlives_its_first_expiry_and_a_released_one_is_free_at_once(
            self, make_store: MakeStore) -> None:
        holder, other = make_store("holder"), make_store("other")
        # Given a key held for half a second, then renewed for a minute
        assert holder.claim("report:running", 0.5)
        assert holder.renew("report:running", 60)
        # When the first half second has passed, then it is still held
        time.sleep(0.6)
        assert not other.claim("report:running", 60)
        # When its holder releases it, then another instance takes it at once
        holder.release("report:running")
        assert other.claim("report:running", 60)
        # And a claim that ran out cannot be renewed
        assert holder.claim("other:running", 0.2)
        time.sleep(0.3)
        assert not holder.renew("other:running", 60)

    def test_only_the_holder_renews_or_releases_a_claim(self, make_store: MakeStore) -> None:
        holder, other = make_store("holder"), make_store("other")
        assert holder.claim("report:running", 60)
        # When another instance tries to renew or release it, then it stays the holder's
        assert not other.renew("report:running", 60)
        other.release("report:running")
        assert not other.claim("report:running", 60)
        assert holder.renew("report:running", 60)

    # -- slots -----------------------------------------------------------------------------

    def test_a_slot_is_claimed_once_and_becomes_the_last_fired(self, make_store: MakeStore) -> None:
        first, second = make_store("first"), make_store("second")
        # Given a schedule never fired, then it has no last firing
        assert first.last_fired("fleet.sync") is None
        # When one instance claims a slot, then no other does, and it is the last fired for all
        assert first.claim_slot("fleet.sync", SLOT, 60)
        assert not second.claim_slot("fleet.sync", SLOT, 60)
        assert second.last_fired("fleet.sync") == SLOT
        assert second.last_fired("fleet.sync").utcoffset() == timedelta(0)
        # And the next slot is free, while other schedules are untouched
        assert second.claim_slot("fleet.sync", SLOT + timedelta(seconds=10), 60)
        assert first.last_fired("fleet.sync") == SLOT + timedelta(seconds=10)
        assert first.last_fired("other") is None

    def test_a_slot_no_later_than_the_last_fired_is_refused_also_after_its_claim_expired(
            self, make_store: MakeStore) -> None:
        first, second = make_store("first"), make_store("second")
        # Given slot 12:00:10 fired with a claim kept only for a moment
        assert first.claim_slot("fleet.sync", SLOT + timedelta(seconds=10), 0.2)
        time.sleep(0.3)
        # Then neither that slot nor an earlier one is taken again, and the last firing stays
        assert not second.claim_slot("fleet.sync", SLOT + timedelta(seconds=10), 60)
        assert not second.claim_slot("fleet.sync", SLOT, 60)
        assert first.last_fired("fleet.sync") == SLOT + timedelta(seconds=10)

    def test_instances_racing_through_the_same_slots_fire_each_exactly_once(self, make_store: MakeStore) -> None:
        # Given six instances that each try twenty consecutive slots in order, all at once
        stores = [make_store(f"instance-{n}") for n in range(6)]
        slots = [SLOT + timedelta(seconds=s) for s in range(20)]
        won: list[list[datetime]] = [[] for _ in stores]

        def run(n: int) -> bool:
            won[n] = [slot for slot in slots if stores[n].claim_slot("fleet.tick", slot, 60)]
            return True

        at_once(len(stores), run)
        # Then every slot was fired by exactly one of them, and the last fired is the last slot
        assert sorted(slot for slots_won in won for slot in slots_won) == slots
        assert stores[0].last_fired("fleet.tick") == slots[-1]

    def test_a_catch_up_after_the_whole_fleet_was_down_fires_once_across_instances(
            self, make_store: MakeStore) -> None:
        # Given a 10 s schedule last fired by the fleet at 12:00:10, then every instance down for a minute
        clock = FakeClock(datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC))
        routine = Recorder()
        schedule = Schedule.define("fleet.sync", routine, every=10)
        stores = [make_store(f"instance-{n}") for n in range(3)]
        first = Scheduler([schedule], stores[0], TraceService(), clock)
        first.start()
        try:
            wait_until(lambda: entry(first, "fleet.sync")["next_run"], message="a planned run")
            tick(first, clock, seconds=5)
            wait_until(lambda: len(routine.firings) == 1, message="the first firing")
        finally:
            first.stop()
            first.join(5)
        clock.advance(seconds=61)
        # When three instances start at once
        schedulers = [Scheduler([schedule], store, TraceService(), clock) for store in stores]
        try:
            for scheduler in schedulers:
                scheduler.start()
            wait_until(lambda: all(entry(s, "fleet.sync")["next_run"] for s in schedulers), message="planned runs")
            wait_until(lambda: len(routine.firings) == 2, message="the catch-up")
            # Then exactly one of them made the catch-up firing, for the latest missed slot
            for scheduler in schedulers:
                scheduler.stop()
            assert all(scheduler.join(5) for scheduler in schedulers)
            assert len(routine.firings) == 2
            assert (routine.firings[1].scheduled_at - routine.firings[0].scheduled_at).total_seconds() == 60
            assert stores[0].last_fired("fleet.sync") == routine.firings[1].scheduled_at
        finally:
            for scheduler in schedulers:
                scheduler.stop()

    def test_a_slot_due_while_a_run_goes_in_another_instance_is_skipped_not_run_beside_it(
            self, make_store: MakeStore) -> None:
        # Given two instances of a 10 s schedule, one of them running its first slot, and still going
        clock = FakeClock(datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC))
        routine = Recorder()
        routine.hold.clear()
        schedule = Schedule.define("fleet.slow", routine, every=10)
        schedulers = [Scheduler([schedule], make_store(f"instance-{n}"), TraceService(), clock) for n in range(2)]
        try:
            for scheduler in schedulers:
                scheduler.start()
            wait_until(lambda: all(entry(s, "fleet.slow")["next_run"] for s in schedulers), message="planned runs")
            clock.advance(seconds=5)
            for scheduler in schedulers:
                scheduler.wake()
            wait_until(lambda: len(routine.firings) == 1, message="the first run")
            # When the next slot comes while it goes
            clock.advance(seconds=10)
            for scheduler in schedulers:
                scheduler.wake()
            # Then whichever instance took that slot skipped it: one skip in the fleet, no second run
            wait_until(lambda: sum(entry(s, "fleet.slow")["skipped"] for s in schedulers) == 1, message="the skip")
            assert len(routine.firings) == 1
            # And once the run ends, the slot after it runs again
            routine.hold.set()
            wait_until(lambda: sum(entry(s, "fleet.slow")["runs"] for s in schedulers) == 1, message="the end")
            clock.advance(seconds=10)
            for scheduler in schedulers:
                scheduler.wake()
            wait_until(lambda: len(routine.firings) == 2, message="the third slot's run")
            assert [f.scheduled_at.second for f in routine.firings] == [10, 30]
        finally:
            routine.hold.set()
            for scheduler in schedulers:
                scheduler.stop()
                scheduler.join(5)

    def test_the_lease_of_a_run_whose_instance_died_frees_the_next_slot(self, make_store: MakeStore) -> None:
        # Given a run of a 1 s schedule that took its lease early in a second, in an instance that then died
        from plba.schedule.lease import lease_key, lease_terms
        from plba.schedule.scheduler import utc_now

        schedule = Schedule.define("fleet.each-second", Recorder(), every=1)
        if utc_now().microsecond > 500_000:
            time.sleep(1.05 - utc_now().microsecond / 1e6)  # early in a second, well before the margin
        ttl, _ = lease_terms(schedule, utc_now())
        assert make_store("dead").claim(lease_key(schedule.name), ttl)
        # When another instance comes to the next slot
        routine = Recorder()
        alive = Scheduler([Schedule.define("fleet.each-second", routine, every=1)], make_store("alive"),
                          TraceService())
        alive.start()
        try:
            wait_until(lambda: routine.firings, message="a firing")
            # Then it ran that slot: the dead run's lease had run out just before it
            assert entry(alive, "fleet.each-second")["skipped"] == 0
        finally:
            alive.stop()
            alive.join(5)

    @pytest.mark.parametrize("how", ["manual", "stopped"])
    def test_a_run_outlasting_its_period_keeps_every_instance_from_starting_beside_it(
            self, make_store: MakeStore, how: str) -> None:
        # Given two instances of a 1 s schedule, and a run in the first that goes on for several slots:
        # a manual run, or a slot's run going on after its scheduler was stopped
        gate, firings = threading.Event(), []

        def routine(firing: Firing) -> None:
            firings.append(firing)
            if len(firings) == 1:
                gate.wait(30)

        schedule = Schedule.define("fleet.long", routine, every=1, misfire="skip")
        first, second = (Scheduler([schedule], make_store(f"instance-{n}"), TraceService()) for n in range(2))
        try:
            first.start()
            if how == "manual":
                assert first.run_now("fleet.long")[0] == "started"
            else:
                wait_until(lambda: firings, message="the first run")
                first.stop()
            second.start()
            # When three slots come while it goes, then each is skipped, not run beside it
            wait_until(lambda: sum(entry(s, "fleet.long")["skipped"] for s in (first, second)) >= 3,
                       message="three skipped slots")
            assert len(firings) == 1
            # And once it ends, the slots fire again
            gate.set()
            wait_until(lambda: len(firings) >= 2, message="a slot fired after the long run")
        finally:
            gate.set()
            for scheduler in (first, second):
                scheduler.stop()
                scheduler.join(5)

    # -- heartbeats ------------------------------------------------------------------------

    def test_a_heartbeat_is_listed_with_its_latest_record_until_it_expires(self, make_store: MakeStore) -> None:
        first, second = make_store("first"), make_store("second")
        # Given two instances beating, one of them twice with a nested record
        first.beat({"id": "first", "state": "starting", "workers": [{"name": "w", "threads": 2}]}, 60)
        first.beat({"id": "first", "state": "running", "workers": [{"name": "w", "threads": 2}]}, 60)
        second.beat({"id": "second", "state": "running"}, 0.5)
        # Then every instance sees both, each with its latest record as it was written
        listed = {record["id"]: record for record in first.instances()}
        assert listed == {"first": {"id": "first", "state": "running", "workers": [{"name": "w", "threads": 2}]},
                          "second": {"id": "second", "state": "running"}}
        # And one that stops beating leaves the list once its heartbeat expires
        wait_until(lambda: [r["id"] for r in second.instances()] == ["first"], message="the silent one expired")

    def test_leaving_removes_the_heartbeat_and_the_stop_request_at_once(self, make_store: MakeStore) -> None:
        first, second = make_store("first"), make_store("second")
        first.beat({"id": "first"}, 60)
        assert second.request_stop("first", {"by": "second"}, 60)
        # When the instance leaves, then it is no longer listed, and no request waits for a namesake
        first.leave("first")
        assert second.instances() == []
        first.beat({"id": "first"}, 60)
        assert first.take_stop_request("first") is None

    def test_a_stop_request_is_left_only_for_a_live_instance_and_taken_once(self, make_store: MakeStore) -> None:
        first, second = make_store("first"), make_store("second")
        # Given one live instance, then a request for an unknown one is refused
        first.beat({"id": "first"}, 60)
        assert not second.request_stop("gone", {"by": "second"}, 60)
        assert second.take_stop_request("gone") is None
        # When a request is left for the live one, then it is taken once, by one of many takers
        assert second.request_stop("first", {"by": "second", "budget": 5}, 60)
        taken = [None] * 6
        at_once(6, lambda n: bool(taken.__setitem__(n, first.take_stop_request("first"))))
        assert [request for request in taken if request is not None] == [{"by": "second", "budget": 5}]

    def test_a_stop_request_not_taken_in_time_expires(self, make_store: MakeStore) -> None:
        first, second = make_store("first"), make_store("second")
        first.beat({"id": "first"}, 60)
        assert second.request_stop("first", {"by": "second"}, 0.2)
        time.sleep(0.3)
        assert first.take_stop_request("first") is None
