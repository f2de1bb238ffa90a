"""The scheduler: one thread sleeps until the next slot of any schedule, claims it, and runs its routine aside."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plba.cluster import ClusterStore
from plba.contracts import HealthStatus, WorkerHealth, WorkerState
from plba.schedule.definition import Firing, Schedule
from plba.schedule.lease import RunLease
from plba.thread_worker import ThreadWorker, join_threads
from plba.tracing.service import TraceService

logger = logging.getLogger("plba.schedule")

# A slot found later than this (seconds) counts as missed: misfire="skip" drops it. APScheduler's default grace.
GRACE = 1.0
# Failures in a row after which a schedule's health turns degraded (unhealthy when critical).
FAILURES_IN_A_ROW = 3
# A slot claim is kept at least this long (seconds), so a late instance cannot take a slot fired elsewhere.
MIN_CLAIM_TTL = 60.0
# A manual run is one per schedule and second in the fleet: a request repeated to several instances runs once.
MANUAL_CLAIM_TTL = 60.0
OUTCOMES = ("ok", "failed", "skipped")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass
class ScheduleState:
    """One schedule's readings in this instance: next and last run, outcome, counters."""

    schedule: Schedule
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    running: bool = False
    # Set by `update` (settings reloaded) to when it happened: the scheduler thread plans afresh from then.
    replan_from: datetime | None = None
    in_a_row: int = 0
    counts: collections.Counter = field(default_factory=collections.Counter)

    def to_dict(self) -> dict[str, Any]:
        """The `/schedules` entry."""
        schedule = self.schedule
        return {"name": schedule.name, **schedule.timing.describe(), "enabled": schedule.enabled,
                "misfire": schedule.misfire, "critical": schedule.critical,
                "next_run": self._next_run() if schedule.enabled else None, "last_run": _iso(self.last_run),
                "last_outcome": self.last_outcome, "last_error": self.last_error, "running": self.running,
                "runs": self.counts["ok"] + self.counts["failed"], "skipped": self.counts["skipped"],
                "failures": self.counts["failed"]}

    def health(self) -> WorkerHealth:
        """Degraded (unhealthy if critical) after FAILURES_IN_A_ROW failed runs in a row."""
        if self.in_a_row >= FAILURES_IN_A_ROW:
            level = HealthStatus.UNHEALTHY if self.schedule.critical else HealthStatus.DEGRADED
            return WorkerHealth(level, f"{self.in_a_row} failed runs in a row; last: {self.last_error}")
        if not self.schedule.enabled:
            return WorkerHealth(HealthStatus.OK, "disabled")
        return WorkerHealth(HealthStatus.OK, f"next run {self._next_run() or 'not planned yet'}")

    def _next_run(self) -> str | None:
        """The planned slot (kept in UTC) in the schedule's timezone, ISO 8601."""
        return None if self.next_run is None else _iso(self.schedule.timing.local(self.next_run))


class Scheduler(ThreadWorker):
    """Fires every schedule of a runtime: each slot once in the fleet that shares `store`.

    The scheduler thread waits on an event until the earliest next slot (so a stop is instant),
    claims the slot in the store, and starts the routine in a thread of its own so a slow routine
    delays no other schedule. A slot whose previous run still goes, here or in another instance
    (the run holds a lease in the store), is skipped and counted by the instance that took it.
    """

    def __init__(self, schedules: list[Schedule], store: ClusterStore, traces: TraceService,
                 clock: Clock = utc_now) -> None:
        super().__init__("plba.scheduler", critical=any(s.critical and s.enabled for s in schedules))
        self.store = store
        self.traces = traces
        self.clock = clock
        self._states = {schedule.name: ScheduleState(schedule) for schedule in schedules}
        self._wake = threading.Event()
        self._state_lock = threading.Lock()
        self._routines: list[threading.Thread] = []
        self._store = _StoreHealth()

    # -- the scheduler thread ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Plan each enabled schedule (with its catch-up firing), then fire slots as they come until stopped."""
        now = self.clock()
        for state in self._enabled():
            self._plan(state, now)
        while not stop.is_set():
            # Cleared before the due slots are looked at, so a wake() arriving meanwhile is not lost.
            self._wake.clear()
            now = self.clock()
            self._replan()
            for state in self._enabled():
                if state.next_run is not None and state.next_run <= now:
                    self._due(state, state.next_run, now)
            self._wake.wait(self._sleep_for())

    def stop(self, force: bool = False) -> None:
        """Stop planning; routines already running finish within the runtime's budget."""
        super().stop(force)
        self._wake.set()

    def wake(self) -> None:
        """Look at the clock again now (after a clock change in tests, or new settings)."""
        self._wake.set()

    def update(self, schedules: list[Schedule]) -> None:
        """Take the timings and `enabled` flags of `schedules` (settings reloaded) and plan them afresh.

        Each is matched by name to one this scheduler fires; a run already going finishes as it was.
        """
        now = self.clock()
        with self._state_lock:
            for schedule in schedules:
                state = self._states[schedule.name]
                if (state.schedule.timing, state.schedule.enabled) == (schedule.timing, schedule.enabled):
                    continue
                state.schedule = schedule
                # Shown at once; planned again by the scheduler thread, in case it was planning the old timing.
                state.next_run = schedule.timing.next_after(now)
                state.replan_from = now
                logger.info("schedule %s: %s now (settings reloaded)", schedule.name, _describe(schedule))
            self.critical = any(state.schedule.critical and state.schedule.enabled for state in self._states.values())
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the scheduler thread and every running routine within one `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not join_threads(self._routines, timeout):
            return False
        return super().join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _plan(self, state: ScheduleState, now: datetime) -> None:
        timing = state.schedule.timing
        state.next_run = timing.next_after(now)
        schedule = state.schedule
        if schedule.misfire != "once" and not schedule.at_start:
            return
        # Slots passed since the last firing anywhere in the fleet get one catch-up firing; a
        # schedule that never fired has missed nothing, unless it asked to fire at start.
        try:
            last = self.store.last_fired(schedule.name)
        except Exception as exc:  # noqa: BLE001 - an unreachable store is reported through health
            self._store.failed(exc)
            return
        latest = timing.latest_at_or_before(now)
        if last is not None and latest <= last:
            return
        if schedule.at_start:
            logger.debug("schedule %s: firing at start for %s", schedule.name, _iso(latest))
        elif last is not None:
            logger.info("schedule %s: slots missed since %s; one catch-up firing for %s",
                        schedule.name, _iso(last), _iso(latest))
        else:
            return
        self._claim_and_fire(state, latest)

    def _due(self, state: ScheduleState, planned: datetime, now: datetime) -> None:
        timing = state.schedule.timing
        latest = timing.latest_at_or_before(now)
        state.next_run = timing.next_after(now)
        late = (now - latest).total_seconds() > GRACE
        if latest > planned or late:
            if state.schedule.misfire == "skip" and late:
                logger.info("schedule %s: slot %s missed (found %.1fs late); skipped (misfire=skip)",
                            state.schedule.name, _iso(latest), (now - latest).total_seconds())
                return
            logger.info("schedule %s: slots from %s missed; one firing for %s",
                        state.schedule.name, _iso(planned), _iso(latest))
        self._claim_and_fire(state, latest)

    def _sleep_for(self) -> float | None:
        planned = [state.next_run for state in self._enabled() if state.next_run is not None]
        return max(0.0, (min(planned) - self.clock()).total_seconds()) if planned else None

    def _replan(self) -> None:
        """Plan afresh each schedule `update` changed (this thread alone plans, so no older plan wins).

        From the moment of the update, so a slot of the new timing already due is fired, not dropped.
        """
        with self._state_lock:
            for state in self._states.values():
                if state.replan_from is not None:
                    state.next_run = state.schedule.timing.next_after(state.replan_from)
                    state.replan_from = None

    def _claim_and_fire(self, state: ScheduleState, slot: datetime) -> None:
        timing = state.schedule.timing
        ttl = max(MIN_CLAIM_TTL, 2 * timing.period_after(slot))
        try:
            won = self.store.claim_slot(state.schedule.name, slot, ttl)
        except Exception as exc:  # noqa: BLE001 - no firing without a claim: never twice, at worst not at all
            self._store.failed(exc)
            return
        self._store.answered()
        if won:
            self._start(state, Firing(state.schedule.name, timing.local(slot)))

    def _enabled(self) -> list[ScheduleState]:
        return [state for state in self._states.values() if state.schedule.enabled]

    # -- running routines --------------------------------------------------------------------

    def run_now(self, name: str) -> tuple[str, Firing | None]:
        """Fire `name` once now, in the whole fleet: ("started", firing), or (reason, None).

        The reason is "running" (its previous run is going), "duplicate" (fired in this second
        already) or "stopped". KeyError for an unknown schedule.
        """
        state = self._states[name]
        if self.status().state not in (WorkerState.IDLE, WorkerState.BUSY):
            return "stopped", None
        if state.running:
            return "running", None
        now = state.schedule.timing.local(self.clock())
        try:
            won = self.store.claim(f"schedules:{name}:manual:{int(now.timestamp())}", MANUAL_CLAIM_TTL)
        except Exception as exc:
            self._store.failed(exc)
            raise
        if not won:
            return "duplicate", None
        firing = Firing(name, now, manual=True)
        return ("started", firing) if self._start(state, firing) else ("running", None)

    def _start(self, state: ScheduleState, firing: Firing) -> bool:
        """Run the routine for `firing` aside; False while a run of it goes in the fleet (a slot: skipped, counted).

        A manual firing whose lease the store cannot tell about raises, as its claim would have.
        """
        with self._state_lock:
            here = state.running
            state.running = True
        # The lease is taken after the slot is, and only by the instance that took the slot: a run
        # going anywhere in the fleet makes this slot skipped, not fired elsewhere.
        lease = RunLease(self.store, state.schedule.name, lambda: state.schedule, self.clock, self._store)
        why = "the previous run is still going" + ("" if here else " in the fleet")
        try:
            started = not here and lease.take()
        except Exception as exc:  # noqa: BLE001 - unknown whether a run goes elsewhere: never two at once
            self._store.failed(exc)
            self._finish_refusal(state, here, firing)
            if firing.manual:
                raise
            logger.warning("schedule %s: slot %s skipped: the cluster store did not answer", firing.name,
                           _iso(firing.scheduled_at))
            return False
        if started:
            with self._state_lock:
                state.last_run = firing.scheduled_at
                state.last_outcome = "running"
            # One daemon thread per firing rather than a pool: a schedule has at most one run going,
            # so they are bounded by the number of schedules, and a routine that hangs past the stop
            # budget cannot hold up the exit of the process.
            thread = threading.Thread(target=self._run_routine, args=(state, firing, lease),
                                      name=f"schedule {firing.name}", daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # no thread to be had: the lease goes back at once
                lease.end()
                if firing.manual:
                    self._finish_refusal(state, here, firing)
                    raise
                why = f"no thread to run it: {exc}"
            else:
                self._routines = [t for t in self._routines if t.is_alive()] + [thread]
                return True
        self._finish_refusal(state, here, firing)
        if not firing.manual:
            logger.warning("schedule %s: slot %s skipped: %s", firing.name, _iso(firing.scheduled_at), why)
        return False

    def _finish_refusal(self, state: ScheduleState, here: bool, firing: Firing) -> None:
        """Undo what a refused `_start` set; count a slot skipped (a manual firing refused is not a slot)."""
        with self._state_lock:
            if not here:
                state.running = False  # only what that call set: the run going here clears its own
            if not firing.manual:
                state.counts["skipped"] += 1
                state.last_outcome = "skipped"

    def _run_routine(self, state: ScheduleState, firing: Firing, lease: RunLease) -> None:
        error: str | None = None
        try:
            lease.keep()
            with self.busy(), self.traces.trace(f"schedule {firing.name}", schedule=firing.name,
                                                scheduled_at=_iso(firing.scheduled_at), manual=firing.manual):
                try:
                    state.schedule.routine(firing)
                except Exception:
                    # Logged inside the trace, so the record carries its trace id.
                    logger.exception("schedule %s: routine failed for slot %s", firing.name,
                                     _iso(firing.scheduled_at))
                    raise
        except Exception as exc:  # noqa: BLE001 - counted and shown; the next slot runs as planned
            error = f"{type(exc).__name__}: {exc}"
        finally:
            # Released before the run counts as ended here, so the next slot finds the lease free.
            lease.end()
            with self._state_lock:
                state.running = False
                state.counts["failed" if error else "ok"] += 1
                state.in_a_row = state.in_a_row + 1 if error else 0
                state.last_outcome = "failed" if error else "ok"
                state.last_error = error

    # -- readings ----------------------------------------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule's `/schedules` entry, in registration order."""
        with self._state_lock:
            return [state.to_dict() for state in self._states.values()]

    def names(self) -> list[str]:
        """The registered schedule names."""
        return list(self._states)

    def health_check(self, name: str) -> Callable[[], WorkerHealth]:
        """A health check reading schedule `name`."""
        return self._states[name].health

    def outcomes(self) -> dict[str, dict[str, int]]:
        """Runs by schedule and outcome (ok, failed, skipped), for `/metrics`."""
        with self._state_lock:
            return {name: {outcome: state.counts[outcome] for outcome in OUTCOMES}
                    for name, state in self._states.items()}

    def health(self) -> WorkerHealth:
        """The thread's health; degraded (unhealthy if critical) while the cluster store does not answer."""
        if self._store.error and not self._crash:
            level = HealthStatus.UNHEALTHY if self.critical else HealthStatus.DEGRADED
            return WorkerHealth(level, f"cluster store unavailable, slots are not fired: {self._store.error}")
        return super().health()


class _StoreHealth:
    """How the cluster store last answered the scheduler and its runs' leases: an outage is logged once."""

    def __init__(self) -> None:
        self.error: str | None = None

    def failed(self, exc: Exception) -> None:
        """The store raised."""
        if self.error is None:
            logger.error("schedules: cluster store unavailable, slots are not fired until it answers: %s", exc)
        self.error = f"{type(exc).__name__}: {exc}"

    def answered(self) -> None:
        """The store answered."""
        if self.error is not None:
            logger.info("schedules: cluster store available again")
            self.error = None


def _describe(schedule: Schedule) -> str:
    if not schedule.enabled:
        return "disabled"
    timing = schedule.timing
    when = f"every {timing.every:g}s" if timing.every is not None else f"cron {timing.cron!r}"
    return f"{when} in {timing.timezone}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
