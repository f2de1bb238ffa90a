"""Retrying a rejection: the mail goes back to the inbox, unseen, and the bot processes it again."""

from __future__ import annotations

import contextlib
import re
import sqlite3

from mail_order_bot.mailboxes import MailboxClient, MailboxError
from mail_order_bot.store import OrderStore

# The suffix `processing.derived_key` adds to a Message-ID an earlier, different mail already used.
DERIVED = re.compile(r"(?P<header>.+>)#[0-9a-f]{16}")
# The ids the bot makes up for a mail without a Message-ID (or one it could not read): no header to search for.
MADE_UP = "@mail-order-bot>"


class RetryError(Exception):
    """The rejection could not be retried and stands as it was; the message says why in one line."""


def header_message_id(record_key: str) -> str | None:
    """The Message-ID header of the mail rejected under `record_key`, or None when the mail had none."""
    found = DERIVED.fullmatch(record_key)
    header = found.group("header") if found else record_key
    return None if header.endswith(MADE_UP) else header


def retry(store: OrderStore, client: MailboxClient, message_id: str) -> str:
    """Retry one rejection over a connection of its own (see `Retrier.retry`); what was done."""
    with Retrier(store, client) as retrier:
        return retrier.retry(message_id)


class Retrier:
    """Retries rejections one by one over one mailbox connection, opened when the first retry needs it.

    A connection that fails is opened again for the next retry; one that cannot be opened is not
    tried again, so a batch of retries costs at most one refused login.
    """

    def __init__(self, store: OrderStore, client: MailboxClient) -> None:
        self.store = store
        self.client = client
        self._connected = False
        self._unreachable: str | None = None

    def __enter__(self) -> Retrier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the mailbox connection, if one is open."""
        self._connected = False
        self.client.close()

    def retry(self, message_id: str) -> str:
        """Put the mail rejected as `message_id` back in the inbox, unseen, then clear the rejection; what was done.

        The rejection is marked first, so that the bot, which may pick the mail up at once, processes it
        afresh instead of taking it for a duplicate; it is deleted only once the mail is back. If the
        mail cannot be moved, the mark is removed and RetryError says why: the mail stays in the
        rejects folder and the rejection stands.
        """
        store = self.store
        header = header_message_id(message_id)
        if header is None:
            raise RetryError(f"{message_id} cannot be retried: the mail had no Message-ID to find it by")
        try:
            mark = store.begin_retry(message_id)
        except sqlite3.Error as exc:
            raise RetryError(f"{message_id} stays rejected: database {store.path}: {exc}") from None
        if mark is None:
            raise RetryError(f"{message_id} is not rejected (any more)")
        try:
            moved = self._restore(header)
        except MailboxError as exc:
            store.abandon_retry(message_id, mark)
            raise RetryError(f"{message_id} stays rejected: {exc}") from None
        except BaseException:
            store.abandon_retry(message_id, mark)
            raise
        if not moved:
            store.abandon_retry(message_id, mark)
            raise RetryError(f"{message_id} stays rejected: its mail is no longer in the rejects folder of "
                             f"{self.client.description}")
        # If this fails, the mail is back and the rejection marked: the bot replaces or deletes it
        # when processing the mail.
        with contextlib.suppress(sqlite3.Error):
            store.finish_retry(message_id, mark)
        mails = "its mail is" if moved == 1 else f"its {moved} mails (sharing the Message-ID) are"
        return f"{message_id}: {mails} back in the inbox, unseen; the bot will process it again"

    def _restore(self, header: str) -> int:
        """`client.restore(header)`, connecting first when needed; raises MailboxError."""
        if self._unreachable is not None:
            raise MailboxError(self._unreachable)
        if not self._connected:
            try:
                self.client.connect()
            except MailboxError as exc:
                self._unreachable = str(exc)
                self.client.close()
                raise
            self._connected = True
        try:
            return self.client.restore(header)
        except BaseException:
            self.close()  # the connection's state is unknown: the next retry opens a fresh one
            raise
