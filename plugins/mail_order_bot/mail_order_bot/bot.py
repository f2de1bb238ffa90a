"""The mail order bot composed on PLBA: a discovery worker, processing workers and health readings.

With `plugin.py` (the hooks), the only modules that import plba; everything they compose is plain Python.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from typing import Any

from plba import QueueWorker, Task
from plba.backoff import Backoff
from plba.contracts import HealthStatus, Worker, WorkerHealth, WorkerState, WorkerStatus
from plba.queue import InMemoryTaskQueue

from mail_order_bot import name
from mail_order_bot.catalogue import load_catalogue
from mail_order_bot.config import BotConfig
from mail_order_bot.mailboxes import MailboxClient, MailboxError, MailboxPool, MaildirMailbox
from mail_order_bot.processing import OrderProcessor
from mail_order_bot.samples import seed_maildir
from mail_order_bot.store import OrderStore
from mail_order_bot.watcher import MailWatcher

logger = logging.getLogger("mail_order_bot")

TASK = "mail_order_bot.process"
# Reconnecting to a mailbox: 1 s, 2 s, 4 s ... up to a minute between attempts.
RECONNECT_BACKOFF = Backoff(base=1.0, cap=60.0, jitter=0.2)


class SourceWorker(Worker):
    """Runs the MailWatcher in one thread: discovers unseen mail and queues one task per message."""

    critical = True

    def __init__(self, worker_name: str, watcher: MailWatcher) -> None:
        self.name = worker_name
        self.watcher = watcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: str | None = None
        self.started_at: float | None = None

    def start(self) -> None:
        """Start the discovery thread."""
        self._stop = threading.Event()
        self._crash = None
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, force: bool = False) -> None:
        """Ask the discovery thread to stop; it notices within a fraction of a second."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the discovery thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def status(self) -> WorkerStatus:
        """Discovered messages count as processed; mailbox errors show as the last error."""
        if self._crash:
            state = WorkerState.FAILED
        elif self._thread is None:
            state = WorkerState.STOPPED
        elif self._stop.is_set():
            state = WorkerState.STOPPING if self._thread.is_alive() else WorkerState.STOPPED
        else:
            state = WorkerState.BUSY if self.watcher.in_flight() else WorkerState.IDLE
        return WorkerStatus(state, in_flight=self.watcher.in_flight(), processed=self.watcher.discovered,
                            last_error=self._crash or self.watcher.error)

    def health(self) -> WorkerHealth:
        """Unhealthy only if the thread crashed; the mailbox itself has its own health check."""
        if self._crash:
            return WorkerHealth(HealthStatus.UNHEALTHY, f"discovery thread crashed: {self._crash}")
        return WorkerHealth(HealthStatus.OK, "watching for new mail")

    def _run(self) -> None:
        try:
            self.watcher.run(self._stop)
        except Exception as exc:  # noqa: BLE001 - reported as failed; the supervisor restarts it
            self._crash = f"{type(exc).__name__}: {exc}"
            logger.exception("mail discovery crashed")


class OrderWorker(QueueWorker):
    """The processing pool; closes its per-thread mailbox and database connections once stopped."""

    def __init__(self, bot: MailOrderBot, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bot = bot

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads; when they are all gone, release their connections."""
        ended = super().join(timeout)
        if ended:
            self.bot.mailboxes.close()
            self.bot.store.close()
        return ended


class MailOrderBot:
    """The composed application: config, store, catalogue, mailbox access, watcher and workers."""

    def __init__(self, config: BotConfig, queue: Any, traces: Any = None) -> None:
        self.config = config
        self.queue = queue
        self.traces = traces
        self.catalogue = load_catalogue(config.catalogue)
        self.store = OrderStore(config.database)
        if config.source == "maildir" and (seeded := seed_maildir(config.maildir)):
            logger.info("created maildir %s with %d sample order mail(s)", config.maildir, seeded)
        self.mailboxes = MailboxPool(self.new_client)
        self.processor = OrderProcessor(self.mailboxes.get, self.store, self.catalogue, progress=self._progress,
                                        limits=config.limits)
        if isinstance(queue, InMemoryTaskQueue) and (released := self.store.unpark(config.mailbox_id)):
            # Their dead tasks died with the last process's memory queue: nothing could requeue them.
            logger.warning("%d parked mail(s) released: the memory queue lost their dead tasks", released)
        self.watcher = MailWatcher(self.new_client, self.publish, poll_interval=config.poll_interval,
                                   retry_delay=RECONNECT_BACKOFF.delay, idle=config.idle,
                                   idle_timeout=config.idle_timeout, parked=self._parked_keys)
        self.source = SourceWorker(f"{name}.source", self.watcher)
        self.workers = OrderWorker(self, name=f"{name}.workers", queue=queue, handler=self.handle, traces=traces,
                                   concurrency=config.workers)

    def new_client(self) -> MailboxClient:
        """A fresh, unconnected mailbox client for the configured source."""
        if self.config.source == "imap":
            # imap-tools (and ssl) load only when the IMAP source is chosen.
            from mail_order_bot.imap import ImapMailbox

            return ImapMailbox(self.config.imap)
        return MaildirMailbox(self.config.maildir)

    def publish(self, key: str) -> None:
        """Queue one message, opening the trace that follows it through processing."""
        with self._trace("mail.discovered", uid=key, source=self.config.source):
            self.queue.publish(Task(TASK, {"key": key}))

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
        since = self.watcher.last_check or self.source.started_at
        if since is None:
            return WorkerHealth(HealthStatus.OK, "not started")
        age = time.monotonic() - since
        if age > limit:
            return WorkerHealth(HealthStatus.DEGRADED, f"no successful check for mail in {age:.0f}s (limit {limit:g}s)")
        return WorkerHealth(HealthStatus.OK, f"last checked {age:.0f}s ago")

    def _trace(self, span: str, **attributes: Any) -> contextlib.AbstractContextManager:
        return self.traces.trace(span, **attributes) if self.traces is not None else contextlib.nullcontext()

    def _progress(self, text: str, **attributes: Any) -> None:
        if self.traces is not None:
            self.traces.message(text, **attributes)
