"""The mail order bot composed on PLBA: discovery (a schedule, or an IDLE worker), processing workers, health.

With `plugin.py` (the hooks), the only modules that import plba; everything they compose is plain Python.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any

from plba import Firing, QueueWorker, Task, ThreadWorker
from plba.backoff import Backoff
from plba.contracts import HealthStatus, TaskQueue, WorkerHealth
from plba.queue import InMemoryTaskQueue
from plba.tracing import TraceService

from mail_order_bot.catalogue import load_catalogue
from mail_order_bot.config import BotConfig
from mail_order_bot.mailboxes import MailboxClient, MailboxError, MailboxPool
from mail_order_bot.processing import OrderProcessor
from mail_order_bot.samples import seed_maildir
from mail_order_bot.store import OrderStore
from mail_order_bot.watcher import MailWatcher

logger = logging.getLogger("mail_order_bot")

# Reconnecting to a mailbox: 1 s, 2 s, 4 s ... up to a minute between attempts.
RECONNECT_BACKOFF = Backoff(base=1.0, cap=60.0, jitter=0.2)


class IdleWorker(ThreadWorker):
    """IMAP IDLE discovery: one thread waits for the server's notification and polls after each (and each connect)."""

    def __init__(self, worker_name: str, watcher: MailWatcher) -> None:
        super().__init__(worker_name)
        self.watcher = watcher

    def run(self, stop: threading.Event) -> None:
        """Watch until stopped; each connect-and-poll counts as one unit of work."""
        self.watcher.watch(stop, self.busy)


class OrderWorker(QueueWorker):
    """The processing pool; once stopped for good, the bot's connections are released."""

    def __init__(self, bot: MailOrderBot, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bot = bot

    def close(self) -> None:
        """Close the mailbox and database connections the threads (and the polls) opened."""
        super().close()
        self.bot.close()


class MailOrderBot:
    """The composed application: config, store, catalogue, mailbox access, watcher and workers.

    Discovery is `poll` (the routine of the `<name>.poll` schedule) when polling, or `idle_worker`
    with IMAP IDLE; `workers` processes the queued messages.
    """

    def __init__(self, config: BotConfig, queue: TaskQueue, traces: TraceService, name: str) -> None:
        self.config = config
        self.queue = queue
        self.traces = traces
        self.task_name = f"{name}.process"
        self.catalogue = load_catalogue(config.catalogue)
        self.store = OrderStore(config.database)
        if config.source == "maildir" and (seeded := seed_maildir(config.maildir)):
            logger.info("created maildir %s with %d sample order mail(s)", config.maildir, seeded)
        self.mailboxes = MailboxPool(self.new_client)
        self.processor = OrderProcessor(self.mailboxes.get, self.store, self.catalogue, progress=traces.message,
                                        limits=config.limits)
        if isinstance(queue, InMemoryTaskQueue) and (released := self.store.unpark(config.mailbox_id)):
            # Their dead tasks died with the last process's memory queue: nothing could requeue them.
            logger.warning("%d parked mail(s) released: the memory queue lost their dead tasks", released)
        self.watcher = MailWatcher(self.new_client, self.publish, poll_interval=config.poll_interval,
                                   retry_delay=RECONNECT_BACKOFF.delay, idle=config.idle,
                                   idle_timeout=config.idle_timeout, parked=self._parked_keys)
        self.idle_worker = IdleWorker(f"{name}.idle", self.watcher) if config.idle else None
        self.workers = OrderWorker(self, name=f"{name}.workers", queue=queue, handler=self.handle, traces=traces,
                                   concurrency=config.workers)
        # Freshness counts from here until the first successful check.
        self.started_at = time.monotonic()

    def poll(self, firing: Firing) -> None:
        """The poll schedule's routine: one check for mail (mailbox errors are reported by the mailbox health)."""
        self.watcher.check()

    def close(self) -> None:
        """Release the polling connection, the processing threads' mailbox clients and the database."""
        self.watcher.close()
        self.mailboxes.close()
        self.store.close()

    def new_client(self) -> MailboxClient:
        """A fresh, unconnected mailbox client for the configured source."""
        return self.config.mailbox()

    def publish(self, key: str) -> None:
        """Queue one message, opening the trace that follows it through processing."""
        with self.traces.trace("mail.discovered", uid=key, source=self.config.source):
            self.queue.publish(Task(self.task_name, {"key": key}))

    def handle(self, task: Task) -> None:
        """Process the message named in the task; a failure is raised so the queue retries it.

        On the last attempt the mail is parked first, so that if this attempt fails (the task is
        dead-lettered) or never finishes (a crash), discovery leaves the mail alone while its task is
        dead. Any task that reaches an outcome, a requeued dead one included, releases it.
        """
        key = str(task.payload["key"])
        last = task.attempts >= self.workers.max_attempts
        if last:
            self._park(key, f"task {task.id} on its last attempt ({task.attempts}) did not finish")
        try:
            self.processor.process(key)
        except Exception as exc:
            if last:
                self._park(key, f"task {task.id} dead-lettered after {task.attempts} attempt(s): "
                                f"{type(exc).__name__}: {exc}")
                logger.error("message %s parked: its task %s is dead-lettered; requeue the task to process it again",
                             key, task.id)
            raise
        if last or key in self._parked_keys():
            self.store.unpark(self.config.mailbox_id, key)
        self.watcher.done(key)

    def _park(self, key: str, reason: str) -> None:
        # In memory first: if the database is what fails, this process still leaves the mail alone.
        self.watcher.park(key)
        try:
            self.store.park(self.config.mailbox_id, key, reason)
        except sqlite3.Error as exc:
            logger.error("message %s could not be parked in %s (%s); it stays parked in this process only",
                         key, self.config.database, exc)

    def _parked_keys(self) -> dict[str, str]:
        try:
            return self.store.parked(self.config.mailbox_id)
        except sqlite3.Error as exc:
            # Without the list, a poll could queue a dead task's mail again: skip polls until it is back.
            raise MailboxError(f"database {self.config.database}: {exc}; not checking for mail") from None

    # -- health ----------------------------------------------------------------------------

    def mailbox_health(self) -> WorkerHealth:
        """Reachable and logged in, as last seen by the watcher."""
        if self.watcher.connected:
            return WorkerHealth(HealthStatus.OK, self.config.where())
        if self.watcher.error:
            return WorkerHealth(HealthStatus.UNHEALTHY, self.watcher.error)
        return WorkerHealth(HealthStatus.DEGRADED, f"connecting to {self.config.where()}")

    def database_health(self) -> WorkerHealth:
        """Whether a write transaction can be opened."""
        try:
            self.store.check_writable()
        except Exception as exc:  # noqa: BLE001 - any failure means the database cannot take orders
            return WorkerHealth(HealthStatus.UNHEALTHY, f"{self.config.database}: {type(exc).__name__}: {exc}")
        return WorkerHealth(HealthStatus.OK, f"{self.config.database} writable")

    def freshness_health(self) -> WorkerHealth:
        """Degraded when the last successful check for mail is older than 3 check periods + 30 s."""
        limit = 3 * self.watcher.check_period + 30
        since = self.watcher.last_check or self.started_at
        age = time.monotonic() - since
        if age > limit:
            return WorkerHealth(HealthStatus.DEGRADED, f"no successful check for mail in {age:.0f}s (limit {limit:g}s)")
        return WorkerHealth(HealthStatus.OK, f"last checked {age:.0f}s ago")
