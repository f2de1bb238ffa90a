"""The use case: process one message, from fetch to marked seen, exactly one order per Message-ID."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mail_order_bot.catalogue import Catalogue
from mail_order_bot.mailboxes import MailboxClient
from mail_order_bot.orders import RejectedOrder, build_order, read_mail
from mail_order_bot.store import OrderStore

logger = logging.getLogger("mail_order_bot.processing")

STORED, REJECTED, DUPLICATE, GONE = "stored", "rejected", "duplicate", "gone"


def _no_progress(text: str, **attributes: Any) -> None:
    """Milestones go nowhere unless a reporter is given."""


class OrderProcessor:
    """Fetch, parse, validate, price, store, then mark seen; rejects what can never succeed.

    Anything else that goes wrong (mailbox or database trouble) is raised, leaving the message
    unseen so it is retried. Safe to run twice for one message: the store is keyed on Message-ID.
    """

    def __init__(self, mailbox: Callable[[], MailboxClient], store: OrderStore, catalogue: Catalogue,
                 progress: Callable[..., None] = _no_progress) -> None:
        self.mailbox = mailbox
        self.store = store
        self.catalogue = catalogue
        self.progress = progress

    def process(self, key: str) -> str:
        """Handle the message with this key; returns stored, rejected, duplicate or gone."""
        client = self.mailbox()
        raw = client.fetch(key)
        if raw is None:
            return GONE  # moved or expunged since it was discovered: someone already dealt with it
        mail = read_mail(raw)
        self.progress("parsed", message_id=mail.message_id, customer=mail.customer)
        earlier = self.store.outcome(mail.message_id)
        if earlier == "stored":
            client.mark_seen(key)
            self.progress("marked seen", duplicate=True)
            return DUPLICATE
        if earlier == "rejected":
            client.reject(key)
            self.progress("moved to rejects", duplicate=True)
            return DUPLICATE
        try:
            order = build_order(mail, self.catalogue)
        except RejectedOrder as rejected:
            return self._reject(client, key, mail.message_id, rejected.reason)
        self.progress("validated", lines=len(order.lines), total=str(order.total))
        self.store.save_order(order)
        self.progress("stored", total=str(order.total))
        client.mark_seen(key)
        self.progress("marked seen")
        logger.info("order from %s stored: %d line(s), total %s (%s)",
                    order.customer, len(order.lines), order.total, order.message_id)
        return STORED

    def _reject(self, client: MailboxClient, key: str, message_id: str, reason: str) -> str:
        # Recorded before the move, so a crash in between still leaves the reason on file.
        self.store.record_rejection(message_id, reason)
        self.progress("rejected", reason=reason)
        client.reject(key)
        self.progress("moved to rejects")
        logger.warning("order %s rejected: %s", message_id, reason)
        return REJECTED
