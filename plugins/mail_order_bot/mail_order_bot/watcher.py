"""Discovery: find unseen mail, hand each message on once, ride out mailbox outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager, nullcontext

from mail_order_bot.mailboxes import MailboxAuthError, MailboxClient, MailboxError

logger = logging.getLogger("mail_order_bot.watcher")


class MailWatcher:
    """Checks a mailbox (`check()` per poll, or `watch(stop)` on IMAP IDLE); `publish(key)` each new message.

    Keys stay in flight until `done(key)` is called, so a message is queued once however often it
    is seen unseen. A parked key (its task dead-lettered: `park(key)`, or listed by `parked()`, the
    store's record shared by every process) is not queued again until `done(key)`. After every
    (re)connect and every IDLE wake-up the whole folder is polled, so
    nothing that arrived while disconnected stays unseen.
    """

    def __init__(self, client_factory: Callable[[], MailboxClient], publish: Callable[[str], None], *,
                 poll_interval: float, retry_delay: Callable[[int], float], idle: bool = False,
                 idle_timeout: float = 290.0, parked: Callable[[], Collection[str]] = frozenset) -> None:
        self.client_factory = client_factory
        self.publish = publish
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.idle = idle
        self.idle_timeout = idle_timeout
        self.parked = parked
        self.connected = False
        self.error: str | None = None
        self.last_check: float | None = None
        self.discovered = 0
        self.polls = 0
        self.connects = 0
        self.failures = 0
        self._in_flight: set[str] = set()
        self._finished: set[str] = set()
        self._parked: set[str] = set()
        self._lock = threading.Lock()
        # The polling connection, kept between checks, and when the next check may retry after an error.
        self._client: MailboxClient | None = None
        self._retry_at = 0.0

    @property
    def check_period(self) -> float:
        """Seconds between successful checks in normal operation."""
        return self.idle_timeout if self.idle else self.poll_interval

    def in_flight(self) -> int:
        """How many discovered messages are queued or being processed."""
        with self._lock:
            return len(self._in_flight)

    def done(self, key: str) -> None:
        """Forget `key`: a later poll that still finds it unseen queues it again."""
        with self._lock:
            self._in_flight.discard(key)
            self._parked.discard(key)
            self._finished.add(key)

    def park(self, key: str) -> None:
        """Keep `key` out of discovery until `done(key)`: its task is dead, a requeue may bring it back."""
        with self._lock:
            self._in_flight.discard(key)
            self._parked.add(key)

    def check(self) -> None:
        """One check for mail (polling): connect if needed and poll; the connection is kept for the next check.

        A mailbox error is logged once per new error and drops the connection; checks before its
        backoff delay has passed do nothing, so a wrong password is not retried at every check.
        """
        if time.monotonic() < self._retry_at:
            return
        try:
            if self._client is None:
                self._client = self._connect()
            self.poll(self._client)
        except MailboxError as exc:
            self._lost(exc, self._client)
            self._client = None
            self._retry_at = time.monotonic() + self.retry_delay(self.failures)

    def watch(self, stop: threading.Event, unit: Callable[[], AbstractContextManager[object]] = nullcontext) -> None:
        """Wait on IMAP IDLE until `stop` is set, polling after every (re)connect and wake-up.

        Each connect-and-poll runs inside `unit()` (the caller's way to count it); mailbox errors
        are logged once per new error and retried with backoff, waiting on `stop`.
        """
        client: MailboxClient | None = None
        try:
            while not stop.is_set():
                try:
                    with unit():
                        if client is None:
                            client = self._connect()
                        self.poll(client)
                    client.wait_for_mail(self.idle_timeout, stop)
                except MailboxError as exc:
                    self._lost(exc, client)
                    client = None
                    stop.wait(self.retry_delay(self.failures))
        finally:
            self.connected = False
            if client is not None:
                client.close()

    def close(self) -> None:
        """Log out of the connection kept between checks, if any."""
        client, self._client = self._client, None
        self.connected = False
        if client is not None:
            client.close()

    def poll(self, client: MailboxClient) -> int:
        """Publish every unseen message not already in flight; returns how many were published."""
        published = 0
        with self._lock:
            # Only keys finished while this poll lists the folder matter (see below).
            self._finished.clear()
        unseen = client.unseen()
        parked = self.parked()
        for key in unseen:
            with self._lock:
                # A key finished after the listing began was probably listed just before it was marked seen.
                if key in self._in_flight or key in self._finished or key in self._parked or key in parked:
                    continue
                self._in_flight.add(key)
            try:
                self.publish(key)
            except Exception as exc:  # noqa: BLE001 - e.g. a full queue: the next poll tries again
                self.done(key)
                logger.warning("could not queue message %s: %s; will retry on the next check", key, exc)
                break
            published += 1
        self.discovered += published
        self.polls += 1
        self.last_check = time.monotonic()
        return published

    def _connect(self) -> MailboxClient:
        client = self.client_factory()
        try:
            client.connect()
        except MailboxError:
            client.close()
            raise
        self.connected = True
        self.connects += 1
        if self.failures:
            logger.info("%s: connected again after %d failed attempt(s)", client.description, self.failures)
        self.failures = 0
        self.error = None
        return client

    def _lost(self, exc: MailboxError, client: MailboxClient | None) -> None:
        """Count and report the failure, and close the connection it broke."""
        self.failures += 1
        self._failed(exc)
        if client is not None:
            client.close()

    def _failed(self, exc: MailboxError) -> None:
        self.connected = False
        message = str(exc)
        if message != self.error:
            # One line per distinct problem, not one per retry: a wrong password must not flood the log.
            hint = " (check user and password)" if isinstance(exc, MailboxAuthError) else ""
            logger.error("%s%s; retrying with backoff", message, hint)
        else:
            logger.debug("still failing: %s", message)
        self.error = message
