"""RedisTaskQueue: tasks on a Redis stream with one consumer group per queue, shared by many processes.

Lifecycle of a task: `publish` XADDs it; `consume` XREADGROUPs it (a lease) and counts the attempt
in a Redis hash before handing it out; `ack` XACKs and XDELs it; `nack` moves it to a sorted set
that is moved back to the stream when due; `dead_letter` moves it to a dead-letter stream. A
lease whose consumer stopped renewing it is taken over with XAUTOCLAIM after the visibility
timeout, so a task whose process died is delivered again, and its attempt was already counted.
Operators read the dead letters, move them back (`requeue`), `purge` and `pause` the queue; the
pause flag is a key, so every process sharing the queue stops leasing.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

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
    reset_for_requeue,
)
from plba.errors import ConfigError, QueueUnavailableError
from plba.masking import mask_url
from plba.queue import redis_scripts
from plba.queue.keeper import Keeper
from plba.queue.redis_support import DEFAULT_URL, QueueKeys, RedisQueueSettings, encode, entry_time
from plba.tracing.context import inject

logger = logging.getLogger("plba.queue.redis")

GROUP = "plba"
# Blocking reads wait at most this long, so `interrupt` and stop take milliseconds, not a poll.
BLOCK_SLICE = 0.1
# Acks are sent in batches: with the next read, by the keeper thread within this many seconds, or
# at once when this many are waiting, whichever comes first.
ACK_FLUSH_INTERVAL = 0.05
ACK_BATCH = 1000
# How often consumers move due delayed tasks back to the stream: the precision of retry delays.
PROMOTE_INTERVAL = 0.1
PUBLISH_CHUNK = 500
# Dead letters read (and moved) per round trip by requeue; ready entries deleted per call by purge.
# Each batch is one atomic script, short enough not to stall Redis for other clients.
DEAD_BATCH = 1000
PURGE_BATCH = 5000
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

# What the reading scripts return per entry: [entry id, attempts counted, task as a dict].
Record = list[Any]
# A settlement waiting to be sent: (entry id, mode, task id, task body, delay in ms).
Settlement = tuple[str, str, str, str, int]


class RedisTaskQueue(TaskQueue):
    """A queue on Redis Streams: at-least-once delivery, leases with a visibility timeout, retries, dead letters."""

    def __init__(
        self,
        name: str,
        url: str = DEFAULT_URL,
        *,
        visibility_timeout: float = 60.0,
        max_attempts: int = 5,
        retry_backoff: Backoff | None = None,
        prefetch: int = 20,
        key_prefix: str = "plba",
        socket_timeout: float = 10.0,
        dead_max: int = DEFAULT_DEAD_MAX,
    ) -> None:
        self.name = name
        self.url = mask_url(url)
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff or Backoff()
        self.prefetch = prefetch
        self.dead_max = dead_max
        self.keys = QueueKeys.for_queue(key_prefix, name)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        try:
            self._client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=5.0,
                socket_timeout=max(socket_timeout, BLOCK_SLICE * 10),
                # A few quick reconnect attempts per command; longer outages are the caller's to wait out.
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
            )
        except ValueError as exc:
            raise QueueUnavailableError(f"queue {name!r}: bad Redis URL {self.url}: {exc}") from None
        self._settle_script = self._client.register_script(redis_scripts.SETTLE)
        self._promote_script = self._client.register_script(redis_scripts.PROMOTE)
        self._extend_script = self._client.register_script(redis_scripts.EXTEND)
        self._prune_script = self._client.register_script(redis_scripts.PRUNE)
        self._publish_script = self._client.register_script(redis_scripts.PUBLISH)
        self._fetch_script = self._client.register_script(redis_scripts.FETCH)
        self._claim_script = self._client.register_script(redis_scripts.CLAIM)
        self._requeue_script = self._client.register_script(redis_scripts.REQUEUE)
        self._purge_ready_script = self._client.register_script(redis_scripts.PURGE_READY)
        self._dead_range_script = self._client.register_script(redis_scripts.DEAD_RANGE)
        self._lock = threading.Lock()
        self._buffer: collections.deque[Task] = collections.deque()
        self._leases: dict[str, str] = {}  # task id -> stream entry id, for every task this consumer holds
        self._acks: list[tuple[str, str]] = []  # (entry id, task id) acked by the caller, not yet sent
        self._unsent: list[Settlement] = []  # settlements that failed to send while Redis was down
        self._generation = 0
        self._maintenance = threading.Lock()
        self._next_promote = 0.0
        self._next_claim = time.monotonic() + self._claim_interval()
        self._claim_cursor = "0-0"
        self._keeper = Keeper(f"redis-queue-{name}", visibility_timeout, (RedisError,), logger)
        self._connected = False

    def connect(self) -> None:
        """Reach Redis and create the consumer group if needed; QueueUnavailableError while it cannot be reached.

        The runtime calls this before its workers start, retrying while the broker is down, so
        building the queue never needs Redis. Idempotent.
        """
        if self._connected:
            return
        try:
            with self._unavailable("connecting"):
                self._ensure_group()
        except QueueUnavailableError as exc:
            if isinstance(exc.__cause__, AuthenticationError):
                # Wrong credentials do not heal by waiting.
                raise ConfigError(f"queue {self.name!r}: Redis at {self.url} refused the credentials: "
                                  f"{exc.__cause__}") from None
            raise
        self._connected = True

    @classmethod
    def from_settings(cls, name: str, table: Any) -> RedisTaskQueue:
        """Build the queue from its `[platform.queues.<name>]` table, without connecting (see `connect`)."""
        settings = RedisQueueSettings.from_table(name, table)
        return cls(name, settings.url, key_prefix=settings.key_prefix, **settings.queue_options())

    # -- producing -------------------------------------------------------------------------

    def publish(self, task: Task) -> None:
        """Add a task to the stream, with the current trace context in its metadata."""
        self.publish_many([task])

    def publish_many(self, tasks: Iterable[Task]) -> None:
        """Add many tasks, a batch of up to 500 per round trip; each carries the current trace context."""
        args: list[str] = []
        for task in tasks:
            inject(task.metadata)
            args += (task.id, encode(task))
        with self._unavailable("publishing"):
            for start in range(0, len(args), 2 * PUBLISH_CHUNK):
                self._publish_script(keys=self.keys.all(), args=args[start:start + 2 * PUBLISH_CHUNK])

    # -- consuming -------------------------------------------------------------------------

    def consume(self, timeout: float | None = None) -> Task | None:
        """Lease the next task, its attempt counted in Redis; None after `timeout` or on `interrupt`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        generation = self._generation
        self.connect()
        self._keeper.start(self._keep)
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
            if generation != self._generation:
                return None
            remaining = BLOCK_SLICE if deadline is None else deadline - time.monotonic()
            tasks = self._fetch(min(remaining, BLOCK_SLICE))
            with self._lock:
                interrupted = generation != self._generation
                if not interrupted:
                    self._buffer.extend(tasks)
            if interrupted:
                # Stopping: what arrived was never started, so it goes back for other consumers.
                self._send(self._releases_of(tasks))
                return None
            if not tasks and deadline is not None and time.monotonic() >= deadline:
                return None

    def ack(self, task: Task) -> None:
        """Mark a leased task done; the XACK and XDEL go out batched within a few milliseconds."""
        with self._lock:
            entry = self._leases.pop(task.id, None)
            if entry is None:
                return
            self._acks.append((entry, task.id))
            full = len(self._acks) >= ACK_BATCH
        if full:
            with contextlib.suppress(RedisError):
                self._flush_acks()

    def nack(self, task: Task, retry_delay: float | None = None) -> None:
        """Give a leased task back, visible again at once or after `retry_delay` seconds."""
        delay_ms = int((retry_delay or 0) * 1000)
        self._settle(task, "retry", delay_ms)

    def dead_letter(self, task: Task, error: str) -> None:
        """Move a leased task to the dead-letter stream with its error and attempt count."""
        task.metadata["error"] = error
        task.metadata["dead_lettered_at"] = time.time()
        self._settle(task, "dead")

    def release(self, task: Task) -> None:
        """Give back a leased task that never started, uncounting its attempt; others can take it at once."""
        self._send(self._releases_of([task]))

    def interrupt(self) -> None:
        """Wake blocked consumers (within one short block) and give buffered, unstarted tasks back."""
        with self._lock:
            self._generation += 1
            buffered = list(self._buffer)
            self._buffer.clear()
        self._send(self._releases_of(buffered))

    def close(self) -> None:
        """Send what is pending, give back buffered tasks, leave the consumer group and disconnect."""
        self._keeper.stop()
        self.interrupt()
        try:
            self._flush_acks()
            self._resend()
            if self._connected:
                self._leave_group()
        except RedisError as exc:
            logger.warning("queue %s: closing while Redis at %s is unavailable (%s); unsent results are "
                           "redelivered after the visibility timeout", self.name, self.url, exc)
        self._client.close()

    # -- reading ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Depth (not yet delivered), pending (leased), delayed, dead, consumers, and this process's buffer."""
        with contextlib.suppress(RedisError):
            self._flush_acks()
        with self._unavailable("reading stats"):
            try:
                length, pending, delayed, dead, consumers, paused = self._read_stats()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._ensure_group()
                length, pending, delayed, dead, consumers, paused = self._read_stats()
        in_flight = int(pending["pending"])
        return {
            "backend": "redis",
            "url": self.url,
            # Acked entries are deleted, so the stream holds exactly the waiting and the leased ones.
            "depth": length - in_flight,
            "pending": in_flight,
            "in_flight": in_flight,
            "delayed": delayed,
            "dead": dead,
            "paused": bool(paused),
            "consumers": len(consumers),
            "buffered": len(self._buffer),
        }

    def _read_stats(self) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        pipe.xlen(self.keys.stream)
        pipe.xpending(self.keys.stream, GROUP)
        pipe.zcard(self.keys.delayed)
        pipe.xlen(self.keys.dead)
        pipe.xinfo_consumers(self.keys.stream, GROUP)
        pipe.exists(self.keys.paused)
        return pipe.execute()

    # -- operating: dead letters and controls -----------------------------------------------

    def list_dead(self, limit: int = 100, cursor: str | None = None) -> DeadPage:
        """Up to `limit` dead letters, oldest first, after `cursor` (a dead-letter stream entry id)."""
        check_limit(limit)
        entries = self._dead_entries("-" if cursor is None else f"({cursor}", "+", limit + 1)
        page = entries[:limit]
        tasks = [DeadTask.from_task(task, task.metadata.get("dead_lettered_at", entry_time(entry)))
                 for entry, task in page]
        return DeadPage(tasks, page[-1][0] if len(entries) > limit else None)

    def requeue(self, ids: Iterable[str]) -> RequeueResult:
        """Move the dead tasks with these ids back to the stream, attempts reset, in atomic batches.

        The dead letters are read oldest first until every id is found, so one call costs a read
        of the dead-letter stream at most (`dead_max` entries).
        """
        wanted = requested_ids(ids)
        pending = set(wanted)
        moved, missed = self._move_dead(lambda task: task.id in pending, lambda: not pending, pending.discard)
        return RequeueResult(moved, [task_id for task_id in wanted if task_id in pending or task_id in missed])

    def requeue_all(self) -> RequeueResult:
        """Move every task that was dead when the call began back to the stream, attempts reset."""
        moved, _ = self._move_dead(lambda task: True, lambda: False, lambda task_id: None)
        return RequeueResult(moved)

    def purge(self, what: Literal["dead", "ready"]) -> int:
        """Delete every dead letter, or every ready entry (leased and delayed tasks stay); returns how many."""
        check_purge(what)
        with self._unavailable(f"purging {what} tasks"):
            if what == "dead":
                pipe = self._client.pipeline(transaction=True)
                pipe.xlen(self.keys.dead)
                pipe.delete(self.keys.dead)
                return int(pipe.execute()[0])
            removed = 0
            while batch := int(self._purge_ready_script(keys=self.keys.all(), args=[GROUP, PURGE_BATCH])):
                removed += batch
            return removed

    def pause(self) -> None:
        """Set the pause flag in Redis: consumers of every process stop leasing within one short read."""
        with self._unavailable("pausing"):
            self._client.set(self.keys.paused, str(time.time()))

    def resume(self) -> None:
        """Clear the pause flag; waiting consumers lease again within one short read."""
        with self._unavailable("resuming"):
            self._client.delete(self.keys.paused)

    def is_paused(self) -> bool:
        """Whether the pause flag is set in Redis."""
        with self._unavailable("reading the pause flag"):
            return bool(self._client.exists(self.keys.paused))

    def _dead_entries(self, start: str, end: str, count: int) -> list[tuple[str, Task]]:
        """Dead letters from `start` to `end` (stream ids, `(` for exclusive) as (entry id, task)."""
        with self._unavailable("reading dead letters"):
            try:
                entries = json.loads(self._dead_range_script(keys=self.keys.all(), args=[start, end, count]))
            except ResponseError as exc:
                if "Invalid stream ID" not in str(exc):
                    raise
                raise ValueError(f"not a dead-letter cursor of queue {self.name!r}: {start.lstrip('(')!r}") from None
        return [(entry, Task.from_dict(data)) for entry, data in entries]

    def _move_dead(self, wanted: Callable[[Task], bool], done: Callable[[], bool],
                   found: Callable[[str], None]) -> tuple[int, set[str]]:
        """Move wanted dead letters back, a batch per atomic script; (moved, task ids no longer dead)."""
        moved, missed = 0, set[str]()
        with self._unavailable("requeueing dead tasks"):
            newest = self._client.xrevrange(self.keys.dead, count=1)
            if not newest:
                return 0, missed
            # Up to the newest dead letter at the start, so tasks that die again meanwhile stay dead.
            end, start = str(newest[0][0]), "-"  # decode_responses=True: a str already
            while not done():
                entries = self._dead_entries(start, end, DEAD_BATCH)
                if not entries:
                    break
                start = f"({entries[-1][0]}"
                args: list[str] = []
                for entry, task in entries:
                    if wanted(task):
                        found(task.id)
                        args += (entry, task.id, encode(reset_for_requeue(task)))
                if args:
                    not_dead = self._requeue_script(keys=self.keys.all(), args=args)
                    missed.update(not_dead)
                    moved += len(args) // 3 - len(not_dead)
        return moved, missed

    # -- internals: fetching ---------------------------------------------------------------

    def _fetch(self, wait: float) -> list[Task]:
        """One read: stale leases first when a claim is due, else new entries, waiting up to `wait`."""
        with self._unavailable("reading tasks"):
            try:
                return self._lease(self._maintain() or self._read(wait))
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream is gone (a Redis restart without persistence, a FLUSHALL): start afresh.
                logger.warning("queue %s: consumer group missing in Redis at %s; creating it again",
                               self.name, self.url)
                self._ensure_group()
                return []

    def _read(self, wait: float) -> list[Record]:
        """Lease new entries, sending batched acks in the same round trip; if none, wait for some."""
        # Bounded: Lua unpacks the ids, and acks pile up while Redis is down. The keeper sends the rest.
        acks = self._take_acks(limit=ACK_BATCH)
        try:
            records = self._fetch_records(acks)
        except UNAVAILABLE:
            self._return_acks(acks)
            raise
        if records is None:
            # Paused: lease nothing, and wait as long as a blocking read would before looking again.
            time.sleep(max(wait, 0.0))
            return []
        if not records and wait >= 0.001:
            # Scripts cannot block, so wait for the next entry with XREAD, then lease with the script.
            # An entry added between the two calls is found at the next read, a slice later at most.
            if self._client.xread({self.keys.stream: "$"}, count=1, block=int(wait * 1000)):
                records = self._fetch_records([]) or []  # paused in between: nothing leased
        return records

    def _fetch_records(self, acks: list[tuple[str, str]]) -> list[Record] | None:
        """Send acks and lease new entries; None while the queue is paused."""
        args: list[str | int] = [GROUP, self.consumer, self.prefetch, *(value for ack in acks for value in ack)]
        return json.loads(self._fetch_script(keys=self.keys.all(), args=args))

    def _maintain(self) -> list[Record]:
        """Move due retries to the stream and, when due, take over leases idle past the visibility timeout."""
        if not self._maintenance.acquire(blocking=False):
            return []  # another thread of this consumer is at it
        try:
            now = time.monotonic()
            if now >= self._next_promote:
                self._promote_script(keys=self.keys.all(), args=[1000])
                self._next_promote = now + PROMOTE_INTERVAL
            if now < self._next_claim:
                return []
            cursor, records, deleted = self._claim_script(keys=self.keys.all(), args=[
                GROUP, self.consumer, int(self.visibility_timeout * 1000), self._claim_cursor, self.prefetch])
            if deleted:
                logger.warning("queue %s: %d leased entries were deleted from the stream by someone else",
                               self.name, deleted)
            # More may be waiting past the cursor: claim again on the next read, else rest a while.
            self._claim_cursor = cursor
            self._next_claim = now if cursor != "0-0" else now + self._claim_interval()
            if cursor == "0-0":
                # Consumers of processes that died stay in the group; forget those long silent and empty.
                silent_ms = int(max(self.visibility_timeout * 10, 600) * 1000)
                self._prune_script(keys=self.keys.all(), args=[GROUP, silent_ms, self.consumer])
            claimed = json.loads(records)
            if claimed:
                logger.info("queue %s: took over %d task(s) whose lease expired", self.name, len(claimed))
            return claimed
        finally:
            self._maintenance.release()

    def _lease(self, records: list[Record]) -> list[Task]:
        """Tasks from records whose attempt Redis already counted, remembered as leased by this consumer."""
        tasks = []
        for entry, attempts, data in records:
            try:
                if not attempts:
                    raise ValueError("no task id and body")
                task = Task.from_dict(data)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                self._dead_letter_malformed(entry, data, exc)
                continue
            task.metadata["attempts"] = attempts
            tasks.append((entry, task))
        with self._lock:
            self._leases.update((task.id, entry) for entry, task in tasks)
        return [task for _, task in tasks]

    def _dead_letter_malformed(self, entry: str, fields: Any, exc: Exception) -> None:
        """An entry that is not a task cannot be handled; keep it for people in the dead-letter stream."""
        logger.error("queue %s: entry %s is not a task (%s); dead-lettered", self.name, entry, exc)
        task = Task("malformed", {"entry": entry, "fields": fields}, {"error": f"not a task: {exc}"})
        self._send([(entry, "dead", task.id, encode(task), 0)])

    # -- internals: settling ---------------------------------------------------------------

    def _settle(self, task: Task, mode: str, delay_ms: int = 0) -> None:
        with self._lock:
            entry = self._leases.pop(task.id, None)
        if entry is None:
            logger.debug("queue %s: task %s is not leased here; nothing to %s", self.name, task.id, mode)
            return
        self._send([(entry, mode, task.id, encode(task), delay_ms)])

    def _releases_of(self, tasks: Iterable[Task]) -> list[Settlement]:
        releases = []
        for task in tasks:
            with self._lock:
                entry = self._leases.pop(task.id, None)
            if entry is not None:
                task.metadata["attempts"] = max(task.attempts - 1, 0)
                releases.append((entry, "release", task.id, encode(task), 0))
        return releases

    def _send(self, settlements: list[Settlement]) -> None:
        """Run settlements in one round trip; while Redis is down keep them to resend, never raise."""
        if not settlements:
            return
        try:
            _, trimmed = self._settle_script(
                keys=self.keys.all(), args=[GROUP, self.dead_max, *(value for s in settlements for value in s)])
        except UNAVAILABLE as exc:
            # The leases stay in Redis, so nothing is lost: these are resent when Redis is back, or the
            # tasks are delivered again after the visibility timeout if this process dies first.
            logger.warning("queue %s: Redis at %s unavailable (%s); %d result(s) will be resent",
                           self.name, self.url, exc, len(settlements))
            with self._lock:
                self._unsent.extend(settlements)
        except ResponseError as exc:
            logger.error("queue %s: Redis refused %d result(s): %s; their tasks are delivered again after "
                         "the visibility timeout", self.name, len(settlements), exc)
        else:
            if trimmed:
                logger.warning("queue %s: more than %d dead letters; dropped the %d oldest", self.name,
                               self.dead_max, trimmed)

    def _resend(self) -> None:
        with self._lock:
            unsent, self._unsent = self._unsent, []
        self._send(unsent)

    def _take_acks(self, limit: int | None = None) -> list[tuple[str, str]]:
        with self._lock:
            acks, self._acks = self._acks[:limit], self._acks[limit:] if limit else []
        return acks

    def _return_acks(self, acks: list[tuple[str, str]]) -> None:
        with self._lock:
            self._acks[:0] = acks

    def _flush_acks(self) -> None:
        acks = self._take_acks()
        if not acks:
            return
        entries = [entry for entry, _ in acks]
        pipe = self._client.pipeline(transaction=False)
        pipe.xack(self.keys.stream, GROUP, *entries)
        pipe.xdel(self.keys.stream, *entries)
        pipe.hdel(self.keys.attempts, *[task_id for _, task_id in acks])
        try:
            pipe.execute()
        except UNAVAILABLE:
            self._return_acks(acks)
            raise

    # -- internals: the keeper thread ------------------------------------------------------

    def _keep(self) -> None:
        """Flush acks, resend results kept during an outage, and extend the leases of live tasks."""
        while not self._keeper.closing.wait(ACK_FLUSH_INTERVAL):
            self._keeper.round(self._flush_acks, self._resend, self._extend_leases,
                               outage=f"queue {self.name}: cannot reach Redis at {self.url} to renew leases",
                               recovered=f"queue {self.name}: Redis at {self.url} reachable again")

    def _extend_leases(self) -> None:
        """Reset the idle time of every entry this consumer holds, so it is not taken over while alive."""
        with self._lock:
            held = [*self._leases.values(), *(entry for entry, _ in self._acks), *(s[0] for s in self._unsent)]
        for start in range(0, len(held), 1000):
            self._extend_script(keys=self.keys.all(), args=[GROUP, self.consumer, *held[start:start + 1000]])

    # -- internals: the group --------------------------------------------------------------

    def _ensure_group(self) -> None:
        try:
            # From id 0: tasks published before the first consumer started are delivered too.
            self._client.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _leave_group(self) -> None:
        """Remove this consumer from the group unless Redis still holds leases for it."""
        mine = self._client.xpending_range(self.keys.stream, GROUP, "-", "+", 1, consumername=self.consumer)
        if not mine:
            self._client.xgroup_delconsumer(self.keys.stream, GROUP, self.consumer)

    def _claim_interval(self) -> float:
        # A dead consumer's tasks wait at most a quarter of the timeout more than the timeout itself.
        return min(max(self.visibility_timeout / 4, 0.05), 5.0)

    @contextlib.contextmanager
    def _unavailable(self, doing: str) -> Iterator[None]:
        """Turn a lost or refused connection into a QueueUnavailableError naming the queue and URL."""
        try:
            yield
        except UNAVAILABLE as exc:
            raise QueueUnavailableError(
                f"queue {self.name!r}: Redis at {self.url} is unavailable while {doing}: {exc}") from exc
