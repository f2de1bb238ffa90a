"""A run's lease on its schedule in the fleet: claimed as the run starts, renewed aside, released at its end.

While a run holds the lease, no instance of the fleet starts another run of that schedule (the
slot that comes due is skipped). The lease runs out half a margin before the next slot unless it
is renewed within a margin of that slot: a run still going then keeps the slot, and the run of an
instance killed earlier leaves it free. A lease never lasts longer than LEASE_HOLD without a renewal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from plba.cluster import ClusterStore
    from plba.schedule.definition import Schedule

logger = logging.getLogger("plba.schedule")

# Seconds before a slot within which a run still going renews its lease past it: a quarter of the
# period, within these bounds. The renewal may come up to half the margin late (a process short of
# CPU), so the floor keeps short schedules from losing the lease of a live run; for them, the run of
# an instance killed mid-way keeps the slots of the next quarter second from firing.
LEASE_MARGIN = 2.0
MIN_LEASE_MARGIN = 0.25
# Longest a lease lasts without a renewal (seconds), renewed halfway: the lease of a run killed long
# before its next slot keeps manual runs out for at most this long.
LEASE_HOLD = 60.0
# Seconds between renewals while the store does not answer (at most; a quarter of the lease when shorter).
RETRY_INTERVAL = 1.0
# How long the end of a run waits for a renewal in flight, so that the release comes after it.
KEEPER_JOIN = 10.0


def lease_key(name: str) -> str:
    """The claim key of schedule `name`'s lease."""
    return f"schedules:{name}:running"


def lease_terms(schedule: Schedule, now: datetime) -> tuple[float, datetime]:
    """How long a lease taken or renewed at `now` lasts (seconds), and when it is to be renewed.

    Away from a slot, the lease ends half a margin before the next one and is renewed a margin
    before it (or lasts LEASE_HOLD, renewed halfway, when the slot is further off); within the
    margin, it is renewed past the slot, which its holder thereby keeps.
    """
    timing = schedule.timing
    upcoming = timing.next_after(now)
    period = (upcoming - timing.latest_at_or_before(now)).total_seconds()
    margin = min(LEASE_MARGIN, max(MIN_LEASE_MARGIN, period / 4))
    left = (upcoming - now).total_seconds()
    if left - margin / 2 > LEASE_HOLD:
        return LEASE_HOLD, now + timedelta(seconds=LEASE_HOLD / 2)
    if left > margin:
        return left - margin / 2, upcoming - timedelta(seconds=margin)
    return left + margin, upcoming + timedelta(seconds=margin / 2)


class RunLease:
    """The lease of one run: `take()` claims it, `keep()` renews it on a thread of its own, `end()` releases it.

    The renewals run apart from the scheduler, so neither a scheduler busy with other schedules
    nor a stopped one lets the lease of a run still going run out. `schedule` is asked afresh at
    each renewal, so a reload's new timing sets the terms.
    """

    def __init__(self, store: ClusterStore, name: str, schedule: Callable[[], Schedule],
                 clock: Callable[[], datetime], health: StoreHealth) -> None:
        self.store = store
        self.schedule = schedule
        self.clock = clock
        self.key = lease_key(name)
        self.name = name
        self._health = health
        self._renew_at: datetime | None = None
        self._done = threading.Event()
        self._keeper: threading.Thread | None = None

    def take(self) -> bool:
        """Claim the lease; False while another run holds it. Raises when the store fails."""
        ttl, self._renew_at = lease_terms(self.schedule(), self.clock())
        return self.store.claim(self.key, ttl)

    def keep(self) -> None:
        """Start renewing the lease taken (called by the run's own thread, before its routine)."""
        assert self._renew_at is not None, "keep() after a take() that succeeded"
        keeper = threading.Thread(target=self._keep, args=(self._renew_at,), name=f"plba-lease {self.name}",
                                  daemon=True)
        keeper.start()
        self._keeper = keeper  # only a started one, which `end()` can join

    def end(self) -> None:
        """Stop renewing and release the lease; one the store cannot release runs out by itself."""
        self._done.set()
        if self._keeper is not None:
            self._keeper.join(KEEPER_JOIN)
        try:
            self.store.release(self.key)
        except Exception as exc:  # noqa: BLE001 - it runs out by itself, before the next slot at the latest
            self._health.failed(exc)
            logger.warning("schedule %s: could not release the lease of its run (it runs out by itself): %s",
                           self.name, exc)

    def _keep(self, renew_at: datetime) -> None:
        while not self._done.wait(max(0.0, (renew_at - self.clock()).total_seconds())):
            now = self.clock()
            ttl, renew_at = lease_terms(self.schedule(), now)
            try:
                kept = self.store.renew(self.key, ttl)
            except Exception as exc:  # noqa: BLE001 - tried again soon; the scheduler's health says why
                self._health.failed(exc)
                renew_at = now + timedelta(seconds=min(RETRY_INTERVAL, max(ttl / 4, 0.01)))
                continue
            self._health.answered()
            if not kept:
                logger.warning("schedule %s: the lease of the run going here ran out before it was renewed; "
                               "another instance may start a slot while this run goes on", self.name)
                return


class StoreHealth(Protocol):
    """Where a lease reports how the cluster store answers (the scheduler's health)."""

    def failed(self, exc: Exception) -> None:
        """The store raised."""

    def answered(self) -> None:
        """The store answered."""
