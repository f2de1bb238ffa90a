"""PostgresTaskQueue: tasks in PostgreSQL tables, leased with `SELECT ... FOR UPDATE SKIP LOCKED`.

Lifecycle of a task: `publish` inserts a row (inside the caller's transaction when given its
connection) and NOTIFYs the queue's channel; `consume_many` leases a batch of visible rows in one
statement, counting each attempt and setting `visible_at` to the lease's end; `ack` deletes the
row; `nack` makes it visible again after the retry delay; `dead_letter` moves it to `dead_tasks`.
A lease that is not renewed simply runs out, so the task of a dead process is visible again after
the visibility timeout with its attempt already counted. An idle consumer sleeps until a
notification, the next delayed task, or at most `poll_interval` (for notifications lost while the
listening connection was down). The tables are described in `plba.queue.postgres_schema`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool

from plba.backoff import Backoff
from plba.contracts import (
    DEFAULT_DEAD_MAX,
    DeadPage,
    DeadTask,
    RequeueResult,
    Task,
    TaskQueue,
    check_limit,
    check_purge,
    requested_ids,
)
from plba.errors import QueueUnavailableError
from plba.masking import mask_url
from plba.postgres import UNAVAILABLE, connect_options, first_line, without_password
from plba.queue.keeper import Keeper
from plba.queue.postgres_schema import Statements, channel_for, migrate
from plba.queue.postgres_settings import PostgresQueueSettings
from plba.queue.redis_support import encode
from plba.tracing.context import inject

logger = logging.getLogger("plba.queue.postgres")

# The keeper waits for notifications in slices this long, so closing takes no longer; acks not
# sent with a lease by then are sent by the keeper.
LISTEN_SLICE = 0.1
# Acks are sent with the next lease, by the keeper within LISTEN_SLICE, or at once when this many wait.
ACK_BATCH = 1000
PUBLISH_CHUNK = 1000

# A settlement waiting to be sent: (kind, row seq, task body, delay or error).
Settlement = tuple[str, int, str, Any]


class Wakeups:
    """A counter that sleeping consumers wait on; notifications and `interrupt` bump it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def signal(self) -> None:
        """Wake every waiting consumer."""
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Sleep up to `timeout` unless a signal came since the count was `seen`."""
        with self._cond:
            if self.count == seen:
                self._cond.wait(timeout)


class PostgresTaskQueue(TaskQueue):
    """A queue in PostgreSQL: at-least-once delivery, leases with a visibility timeout, retries, dead letters."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        visibility_timeout: float = 60.0,
        max_attempts: int = 5,
        retry_backoff: Backoff | None = None,
        prefetch: int = 20,
        schema: str = "plba",
        socket_timeout: float = 10.0,
        pool_size: int = 10,
        poll_interval: float = 1.0,
        dead_max: int = DEFAULT_DEAD_MAX,
    ) -> None:
        self.name = name
        self.url = mask_url(url)
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff or Backoff()
        self.prefetch = prefetch
        self.schema = schema
        self.poll_interval = poll_interval
        self.dead_max = dead_max
        self.socket_timeout = socket_timeout
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.channel = channel_for(schema, name)
        self.sql = Statements.for_schema(schema)
        self._dsn = url
        self._connect_args: dict[str, Any] = {
            **connect_options(socket_timeout, f"plba queue {name}"),
            # Leasing must read the index in order, however stale the table's statistics (a burst of
            # new rows looks like a few): a sort of the whole queue per lease is what this forbids.
            "options": "-c enable_sort=off -c enable_bitmapscan=off",
        }
        self._params = {"queue": name, "channel": self.channel, "consumer": self.consumer,
                        "lease": float(visibility_timeout)}
        self._lock = threading.Lock()
        self._leases: dict[str, int] = {}  # task id -> row seq, for every task this consumer holds
        self._acks: list[int] = []  # seqs of tasks acked by the caller, not yet deleted
        self._unsent: list[Settlement] = []  # settlements that failed to send while PostgreSQL was down
        self._generation = 0
        self._wakeups = Wakeups()
        self._listening = False
        self._keeper = Keeper(f"postgres-queue-{name}", visibility_timeout, (QueueUnavailableError,), logger)
        self._recovering = threading.Lock()
        try:
            with psycopg.connect(url, **self._connect_args) as conn:
                migrate(conn, schema)
        except psycopg.ProgrammingError as exc:
            raise QueueUnavailableError(
                f"queue {name!r}: bad PostgreSQL URL {self.url}: {without_password(first_line(exc), url)}"
            ) from None
        except psycopg.Error as exc:
            raise QueueUnavailableError(
                f"queue {name!r}: PostgreSQL at {self.url} is unavailable while connecting: "
                f"{without_password(first_line(exc), url)}"
            ) from None
        self._pool = ConnectionPool(url, kwargs=self._connect_args, min_size=1, max_size=pool_size,
                                    timeout=socket_timeout, name=f"plba-queue-{name}", open=False)
        self._pool.open(wait=False)

    @classmethod
    def from_settings(cls, name: str, table: Any) -> PostgresTaskQueue:
        """Build the queue from its `[platform.queues.<name>]` table; fails at once without PostgreSQL."""
        settings = PostgresQueueSettings.from_table(name, table)
        return cls(name, settings.url, schema=settings.schema, pool_size=settings.pool_size,
                   poll_interval=settings.poll_interval, **settings.queue_options())

    # -- producing -------------------------------------------------------------------------

    def publish(self, task: Task, connection: psycopg.Connection | None = None) -> None:
        """Add a task, with the current trace context in its metadata.

        With `connection` (an open psycopg connection to the same database) the task is added in
        that connection's current transaction: it exists exactly when that transaction commits.
        """
        self.publish_many([task], connection=connection)

    def publish_many(self, tasks: Iterable[Task], connection: psycopg.Connection | None = None) -> None:
        """Add many tasks, up to 1,000 per statement; with `connection`, inside its transaction."""
        batch = list(tasks)
        for task in batch:
            inject(task.metadata)
        for start in range(0, len(batch), PUBLISH_CHUNK):
            chunk = batch[start:start + PUBLISH_CHUNK]
            params = {**self._params, "ids": [t.id for t in chunk], "names": [t.name for t in chunk],
                      "bodies": [encode(t) for t in chunk]}
            if connection is not None:
                connection.execute(self.sql.publish, params)
                continue
            with self._connection("publishing") as conn:
                conn.execute(self.sql.publish, params)

    # -- consuming -------------------------------------------------------------------------

    def consume(self, timeout: float | None = None) -> Task | None:
        """Lease the next task, its attempt counted; None after `timeout` or on `interrupt`."""
        tasks = self.consume_many(1, timeout)
        return tasks[0] if tasks else None

    def consume_many(self, max_count: int, timeout: float | None = None) -> list[Task]:
        """Lease up to `max_count` (at most `prefetch`) visible tasks, waiting up to `timeout` for the first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        generation = self._generation
        self._keeper.start(self._keep)
        count = max(1, min(max_count, self.prefetch))
        while True:
            seen = self._wakeups.count
            # Waiting for a connection counts against the timeout, so an outage shows within it.
            wait_for_connection = self.socket_timeout if deadline is None else deadline - time.monotonic()
            tasks = self._lease(count, max(0.1, min(wait_for_connection, self.socket_timeout)))
            if generation != self._generation:
                # Stopping: what arrived was never started, so it goes back for other consumers.
                self._send(self._releases_of(tasks))
                return []
            if tasks:
                return tasks
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            wait = self._idle_wait()
            self._wakeups.wait(seen, wait if remaining is None else min(wait, remaining))
            if generation != self._generation:
                return []

    def ack(self, task: Task) -> None:
        """Mark a leased task done: its row is deleted, batched with other acks."""
        self.ack_many((task,))

    def ack_many(self, tasks: Iterable[Task]) -> None:
        """Mark several leased tasks done; the rows are deleted with the next lease, or within 0.1 s."""
        with self._lock:
            for task in tasks:
                seq = self._leases.pop(task.id, None)
                if seq is not None:
                    self._acks.append(seq)
            full = len(self._acks) >= ACK_BATCH
        if full:
            self._flush_acks()

    def nack(self, task: Task, retry_delay: float | None = None) -> None:
        """Give a leased task back, visible again at once or after `retry_delay` seconds."""
        self._settle(task, "retry", float(retry_delay or 0.0))

    def dead_letter(self, task: Task, error: str) -> None:
        """Move a leased task to `dead_tasks` with its error and attempt count."""
        task.metadata["error"] = error
        task.metadata["dead_lettered_at"] = time.time()
        self._settle(task, "dead", error)

    def release(self, task: Task) -> None:
        """Give back a leased task that never started, uncounting its attempt; others can take it at once."""
        self._send(self._releases_of([task]))

    def interrupt(self) -> None:
        """Wake blocked consumers at once; each returns an empty batch."""
        with self._lock:
            self._generation += 1
        self._wakeups.signal()

    def close(self) -> None:
        """Send what is pending, stop the listener and close the connections."""
        self._keeper.closing.set()
        self.interrupt()
        self._keeper.stop()
        try:
            self._flush_acks()
            self._resend()
        except QueueUnavailableError as exc:
            logger.warning("queue %s: closing while PostgreSQL is unavailable (%s); unsent results are "
                           "redelivered after the visibility timeout", self.name, exc)
        self._pool.close()

    # -- operating -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Depth (visible now), in flight (leased), delayed, dead and the pause flag."""
        with contextlib.suppress(QueueUnavailableError):
            self._flush_acks()
        with self._connection("reading stats") as conn:
            depth, in_flight, delayed, dead, paused = _one_row(conn.execute(self.sql.stats, self._params))
        return {
            "backend": "postgres",
            "url": self.url,
            "depth": depth,
            "in_flight": in_flight,
            "delayed": delayed,
            "dead": dead,
            "paused": paused,
            "listening": self._listening,
        }

    def list_dead(self, limit: int = 100, cursor: str | None = None) -> DeadPage:
        """Up to `limit` dead letters, oldest first, after `cursor` (a row number of `dead_tasks`)."""
        check_limit(limit)
        try:
            after = -1 if cursor is None else int(cursor)
        except ValueError:
            raise ValueError(f"not a dead-letter cursor of queue {self.name!r}: {cursor!r}") from None
        with self._connection("reading dead letters") as conn:
            rows = conn.execute(self.sql.dead_list, {**self._params, "after": after, "limit": limit + 1}).fetchall()
        page = rows[:limit]
        tasks = []
        for _, body, attempts, error, dead_at in page:
            task = _task_or_none(body) or Task("malformed", body)
            task.metadata.update(attempts=attempts, error=error)
            tasks.append(DeadTask.from_task(task, float(dead_at)))
        return DeadPage(tasks, str(page[-1][0]) if len(rows) > limit else None)

    def requeue(self, ids: Iterable[str]) -> RequeueResult:
        """Move the dead tasks with these ids back to the queue in one statement, attempts reset."""
        wanted = requested_ids(ids)
        moved = self._requeue(wanted)
        found = set(moved)
        return RequeueResult(len(moved), [task_id for task_id in wanted if task_id not in found])

    def requeue_all(self) -> RequeueResult:
        """Move every task dead when the statement starts back to the queue, attempts reset."""
        return RequeueResult(len(self._requeue(None)))

    def purge(self, what: Literal["dead", "ready"]) -> int:
        """Delete every dead letter, or every ready task (leased and delayed ones stay); returns how many."""
        check_purge(what)
        statement = self.sql.purge_dead if what == "dead" else self.sql.purge_ready
        with self._connection(f"purging {what} tasks") as conn:
            return conn.execute(statement, self._params).rowcount

    def pause(self) -> None:
        """Set the pause flag in the database: consumers in every process stop leasing until `resume`."""
        self._set_paused(True)

    def resume(self) -> None:
        """Clear the pause flag; waiting consumers are woken through NOTIFY and lease at once."""
        self._set_paused(False)

    def is_paused(self) -> bool:
        """Whether the queue's pause flag is set in the database."""
        with self._connection("reading the pause flag") as conn:
            return bool(_one_row(conn.execute(self.sql.is_paused, self._params))[0])

    def _requeue(self, ids: list[str] | None) -> list[str]:
        """Move dead letters (those with `ids`, or all) back; the task ids moved, one per task."""
        params = {**self._params, "all": ids is None, "ids": ids or []}
        with self._connection("requeueing dead tasks") as conn:
            moved, _ = _one_row(conn.execute(self.sql.requeue, params))
        return moved or []

    def _set_paused(self, paused: bool) -> None:
        with self._connection("pausing" if paused else "resuming") as conn:
            conn.execute(self.sql.set_paused, {**self._params, "paused": paused})

    # -- internals: leasing ----------------------------------------------------------------

    def _lease(self, count: int, wait: float) -> list[Task]:
        """Lease up to `count` tasks, deleting the acked ones in the same statement; `wait` for a connection."""
        acks = self._take_acks()
        try:
            with self._connection("leasing tasks", wait) as conn:
                rows = conn.execute(self.sql.lease, {**self._params, "count": count, "acks": acks}).fetchall()
        except QueueUnavailableError:
            self._return_acks(acks)
            raise
        rows.sort(key=lambda row: row[0])
        tasks: list[tuple[int, Task]] = []
        malformed = []
        for seq, attempts, body in rows:
            task = _task_or_none(body)
            if task is None:
                malformed.append((seq, body))
                continue
            task.metadata["attempts"] = attempts
            tasks.append((seq, task))
        if malformed:
            self._dead_letter_malformed(malformed)
        with self._lock:
            self._leases.update((task.id, seq) for seq, task in tasks)
        return [task for _, task in tasks]

    def _idle_wait(self) -> float:
        """How long an idle consumer sleeps: until the next task is due, at most `poll_interval`."""
        with contextlib.suppress(QueueUnavailableError):
            with self._connection("reading the next due task") as conn:
                due, paused = _one_row(conn.execute(self.sql.next_visible, self._params))
            if due is not None and not paused:
                return max(0.001, min(float(due), self.poll_interval))
        return self.poll_interval

    def _dead_letter_malformed(self, rows: list[tuple[int, Any]]) -> None:
        """A row that is not a task cannot be handled; keep it for people in the dead letters."""
        settlements = []
        for seq, body in rows:
            logger.error("queue %s: row %d is not a task; dead-lettered", self.name, seq)
            settlements.append(("dead", seq, json.dumps(body), "not a task: needs id, name, payload"))
        self._send(settlements)

    # -- internals: settling ---------------------------------------------------------------

    def _settle(self, task: Task, kind: str, detail: Any) -> None:
        with self._lock:
            seq = self._leases.pop(task.id, None)
        if seq is None:
            logger.debug("queue %s: task %s is not leased here; nothing to %s", self.name, task.id, kind)
            return
        self._send([(kind, seq, encode(task), detail)])

    def _releases_of(self, tasks: Iterable[Task]) -> list[Settlement]:
        releases = []
        with self._lock:
            for task in tasks:
                seq = self._leases.pop(task.id, None)
                if seq is not None:
                    task.metadata["attempts"] = max(task.attempts - 1, 0)
                    releases.append(("release", seq, "", None))
        return releases

    def _send(self, settlements: list[Settlement]) -> None:
        """Run settlements in one round trip; while PostgreSQL is down keep them to resend, never raise."""
        if not settlements:
            return
        try:
            self._apply(settlements)
        except QueueUnavailableError as exc:
            # The leases stay in the table, so nothing is lost: these are resent when PostgreSQL is
            # back, or the tasks are delivered again after the visibility timeout if this process dies.
            logger.warning("queue %s: %s; %d result(s) will be resent", self.name, exc, len(settlements))
            with self._lock:
                self._unsent.extend(settlements)

    def _apply(self, settlements: list[Settlement]) -> None:
        """Run settlements grouped by kind, one statement per kind, in one round trip."""
        by_kind: dict[str, list[Settlement]] = {}
        for settlement in settlements:
            by_kind.setdefault(settlement[0], []).append(settlement)
        trim_dead = "dead" in by_kind and self.dead_max > 0
        trimmed = None
        with self._connection("settling tasks") as conn, _pipeline(conn, len(by_kind) > 1 or trim_dead):
            for kind, group in by_kind.items():
                params: dict[str, Any] = {**self._params, "seqs": [s[1] for s in group]}
                if kind == "retry":
                    params.update(bodies=[s[2] for s in group], delays=[s[3] for s in group])
                elif kind == "dead":
                    params.update(bodies=[s[2] for s in group], errors=[s[3] for s in group])
                conn.execute(getattr(self.sql, kind), params)
            if trim_dead:
                trimmed = conn.execute(self.sql.trim_dead, {**self._params, "dead_max": self.dead_max})
        if trimmed is not None and trimmed.rowcount > 0:
            logger.warning("queue %s: more than %d dead letters; dropped the %d oldest",
                           self.name, self.dead_max, trimmed.rowcount)

    def _take_acks(self) -> list[int]:
        with self._lock:
            acks, self._acks = self._acks, []
        return acks

    def _return_acks(self, acks: list[int]) -> None:
        with self._lock:
            self._acks[:0] = acks

    def _flush_acks(self) -> None:
        """Delete the acked rows now; raises QueueUnavailableError (keeping them) when PostgreSQL is down."""
        acks = self._take_acks()
        if not acks:
            return
        try:
            with self._connection("acknowledging tasks") as conn:
                conn.execute(self.sql.ack, {"seqs": acks})
        except QueueUnavailableError:
            self._return_acks(acks)
            raise

    def _resend(self) -> None:
        with self._lock:
            unsent, self._unsent = self._unsent, []
        if unsent:
            try:
                self._apply(unsent)
            except QueueUnavailableError:
                with self._lock:
                    self._unsent[:0] = unsent
                raise

    # -- internals: the keeper thread ------------------------------------------------------

    def _keep(self) -> None:
        """Listen for the queue's notifications, resend kept results and renew the leases of live tasks."""
        listener: psycopg.Connection | None = None
        reconnect = Backoff(base=0.2, cap=5.0, jitter=0.2)
        failures = 0
        next_connect = 0.0
        while not self._keeper.closing.is_set():
            if listener is None and time.monotonic() >= next_connect:
                try:
                    listener = self._listen()
                    failures = 0
                except psycopg.Error as exc:
                    failures += 1
                    next_connect = time.monotonic() + reconnect.delay(failures)
                    if failures == 1:
                        logger.warning("queue %s: cannot listen for new tasks at %s (%s); polling every %gs",
                                       self.name, self.url, first_line(exc), self.poll_interval)
            if listener is None:
                self._keeper.closing.wait(LISTEN_SLICE)
            else:
                try:
                    for _ in listener.notifies(timeout=LISTEN_SLICE):
                        self._wakeups.signal()
                except psycopg.Error as exc:
                    logger.warning("queue %s: lost the listening connection (%s)", self.name, first_line(exc))
                    self._listening = False
                    with contextlib.suppress(psycopg.Error):
                        listener.close()
                    listener = None
            self._keeper.round(self._flush_acks, self._resend, self._extend_leases,
                               outage=f"queue {self.name}: cannot renew leases",
                               recovered=f"queue {self.name}: PostgreSQL at {self.url} reachable again")
        self._listening = False
        if listener is not None:
            with contextlib.suppress(psycopg.Error):
                listener.close()

    def _listen(self) -> psycopg.Connection:
        listener = psycopg.connect(self._dsn, **self._connect_args)
        try:
            listener.execute(f'LISTEN "{self.channel}"')
        except psycopg.Error:
            listener.close()
            raise
        self._listening = True
        # Tasks published while nobody listened would otherwise wait for the next poll.
        self._wakeups.signal()
        return listener

    def _extend_leases(self) -> None:
        """Push back the end of every lease this consumer holds, so a live task is not taken over."""
        with self._lock:
            held = [*self._leases.values(), *self._acks, *(s[1] for s in self._unsent)]
        if held:
            with self._connection("renewing leases") as conn:
                conn.execute(self.sql.extend, {**self._params, "seqs": held})

    # -- internals: connections ------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self, doing: str, wait: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled connection (waiting up to `wait`, default the socket timeout, for one to be free).

        A lost or refused connection becomes a QueueUnavailableError naming the queue and URL.
        """
        try:
            with self._pool.connection(timeout=wait) as conn:
                yield conn
        except UNAVAILABLE as exc:
            self._drop_broken_connections()
            raise QueueUnavailableError(
                f"queue {self.name!r}: PostgreSQL at {self.url} is unavailable while {doing}: {first_line(exc)}"
            ) from exc

    def _drop_broken_connections(self) -> None:
        """After a failure the other idle connections are likely dead too (a server restart): test them now."""
        if not self._recovering.acquire(blocking=False):
            return
        try:
            self._pool.check()
        except Exception:  # noqa: BLE001 - a check that fails leaves the pool to heal on its own
            logger.debug("queue %s: pool check failed", self.name, exc_info=True)
        finally:
            self._recovering.release()


def _pipeline(conn: psycopg.Connection, wanted: bool) -> contextlib.AbstractContextManager:
    # A pipeline sends several statements in one round trip, but costs a sync of its own.
    return conn.pipeline() if wanted else contextlib.nullcontext()


def _task_or_none(body: Any) -> Task | None:
    try:
        return Task.from_dict(body)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _one_row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a statement that always returns exactly one (an aggregate over the queue's rows)."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("a single-row statement returned no row")
    return row
