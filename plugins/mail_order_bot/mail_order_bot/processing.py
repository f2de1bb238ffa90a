"""The use case: process one message, from fetch to marked seen, ending in exactly one recorded outcome."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from mail_order_bot.catalogue import Catalogue
from mail_order_bot.limits import Limits
from mail_order_bot.mail import HEADER_BYTES, OrderMail, read_mail, read_oversized
from mail_order_bot.mailboxes import MailboxClient, MailboxError
from mail_order_bot.orders import RejectedOrder, build_order
from mail_order_bot.store import RETRYING, OrderStore

logger = logging.getLogger("mail_order_bot.processing")

STORED, REJECTED, DUPLICATE, GONE = "stored", "rejected", "duplicate", "gone"
# Worth retrying: the mailbox or the database is unavailable for now. Anything else a mail causes
# is deterministic (a value the validation missed, a library choking on it) and ends as a rejection.
TRANSIENT = (MailboxError, OSError, sqlite3.OperationalError)


def _no_progress(text: str, **attributes: Any) -> None:
    """Milestones go nowhere unless a reporter is given."""


class OrderProcessor:
    """Fetch, parse, validate, price, store, then mark seen; rejects what can never succeed.

    Mailbox or database trouble (TRANSIENT) is raised, leaving the message unseen so it is retried.
    Any other error is a rejection naming it, so a poison mail cannot loop. Safe to run twice for one
    message: the store is keyed on Message-ID, and a digest of the content tells a redelivery of the
    same mail (skipped) from a different mail reusing the Message-ID (stored under a derived key).
    """

    def __init__(self, mailbox: Callable[[], MailboxClient], store: OrderStore, catalogue: Catalogue,
                 progress: Callable[..., None] = _no_progress, limits: Limits | None = None) -> None:
        self.mailbox = mailbox
        self.store = store
        self.catalogue = catalogue
        self.progress = progress
        self.limits = limits or Limits()

    def process(self, key: str) -> str:
        """Handle the message with this key; returns stored, rejected, duplicate or gone."""
        client = self.mailbox()
        size = client.size(key)
        if size is None:
            return GONE  # moved or expunged since it was discovered: someone already dealt with it
        try:
            mail = self._read(client, key, size)
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - a mail the parser chokes on would choke it on every retry
            unreadable = f"<unreadable-{hashlib.sha256(key.encode()).hexdigest()}@mail-order-bot>"
            return self._reject(client, key, unreadable, _failure(key, exc))
        self.progress("parsed", message_id=mail.message_id, customer=mail.customer)
        return self._settle(client, key, mail)

    def _read(self, client: MailboxClient, key: str, size: int) -> OrderMail:
        if size > self.limits.max_mail_bytes:
            # Judged on its headers alone: the body is never fetched.
            return read_oversized(client.read(key, 0, HEADER_BYTES), size, self.limits)
        return read_mail(client.chunks(key, size), self.limits)

    def _settle(self, client: MailboxClient, key: str, mail: OrderMail) -> str:
        record_key = mail.message_id
        earlier = self.store.outcome(record_key)
        if earlier is not None and earlier.digest not in (None, mail.digest):
            # The same Message-ID on a different mail: a mailer reusing ids, or a corrected order sent
            # again. Neither may vanish, so it is recorded under a key derived from its content.
            record_key = derived_key(mail)
            logger.warning("Message-ID %s was already used by a different mail; recording this one as %s",
                           mail.message_id, record_key)
            earlier = self.store.outcome(record_key)
        if earlier is not None and earlier.kind != RETRYING:
            # Rows stored before digests existed (digest NULL) count as the same mail, as they did then.
            # A retried rejection is not an outcome: its mail is processed afresh, replacing it.
            if earlier.kind == "stored":
                client.mark_seen(key)
                self.progress("marked seen", duplicate=True)
            else:
                client.reject(key)
                self.progress("moved to rejects", duplicate=True)
            return DUPLICATE
        try:
            order = build_order(mail, self.catalogue, self.limits, record_key)
            self.progress("validated", lines=len(order.lines), total=str(order.total))
            self.store.save_order(order, mail.digest)
        except RejectedOrder as rejected:
            return self._reject(client, key, record_key, rejected.reason, mail)
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - deterministic for this mail: retrying would loop forever
            return self._reject(client, key, record_key, _failure(key, exc), mail)
        self.progress("stored", total=str(order.total))
        client.mark_seen(key)
        self.progress("marked seen")
        logger.info("order from %s stored: %d line(s), total %s (%s)",
                    order.customer, len(order.lines), order.total, order.message_id)
        return STORED

    def _reject(self, client: MailboxClient, key: str, message_id: str, reason: str,
                mail: OrderMail | None = None) -> str:
        # Recorded before the move, so a crash in between still leaves the reason on file.
        if mail is None:
            self.store.record_rejection(message_id, reason)
        else:
            self.store.record_rejection(message_id, reason, mail.digest, mail.subject, mail.customer)
        self.progress("rejected", reason=reason)
        client.reject(key)
        self.progress("moved to rejects")
        logger.warning("order %s rejected: %s", message_id, reason)
        return REJECTED


def _failure(key: str, exc: Exception) -> str:
    """The rejection reason for an unexpected error, logged with its traceback: it is a bug to fix."""
    logger.error("message %s could not be processed; rejecting it", key, exc_info=exc)
    return f"could not be processed ({type(exc).__name__}: {exc})"


def derived_key(mail: OrderMail) -> str:
    """The key of a mail whose Message-ID an earlier, different mail already used: the id plus a digest prefix."""
    return f"{mail.message_id}#{mail.digest[:16]}"
