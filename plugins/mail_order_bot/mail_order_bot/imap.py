"""The IMAP MailboxClient (imap-tools): fetch, mark seen, move to rejects, and IDLE."""

from __future__ import annotations

import contextlib
import imaplib
import io
import re
import select
import ssl
import threading
import time
from collections.abc import Iterator, Mapping

from imap_tools import AND, BaseMailBox, H, MailBox, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError

from mail_order_bot.mailboxes import ImapSettings, MailboxAuthError, MailboxClient, MailboxError

SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapMailbox(MailboxClient):
    """One IMAP connection (imap-tools), opened lazily and reopened after a failure."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.description = f"imap {settings.user}@{settings.host}:{settings.port}/{settings.folder}"
        self._box: BaseMailBox | None = None
        self._rejects_ready = False

    def connect(self) -> None:
        """Connect (implicit TLS unless `ssl` is false) and log in, selecting the folder."""
        self.close()
        s = self.settings
        cls: type[MailBox | MailBoxUnencrypted] = MailBox if s.ssl else MailBoxUnencrypted
        try:
            box = cls(s.host, s.port, timeout=s.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"cannot reach IMAP server {s.host}:{s.port}: {_describe(exc)}") from None
        try:
            box.login(s.user, s.password, initial_folder=s.folder)
        except MailboxLoginError as exc:
            _drop(box)
            # The server's words only: the password is never part of the message.
            raise MailboxAuthError(f"IMAP login as {s.user!r} on {s.host}:{s.port} refused: "
                                   f"{_server_text(exc.command_result)}") from None
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            _drop(box)
            raise MailboxError(f"IMAP login on {s.host}:{s.port} failed: {_describe(exc)}") from None
        self._box = box

    def unseen(self) -> list[str]:
        """UIDs without the Seen flag, ascending."""
        with self._guard("search") as box:
            # A session's view of flags set by other sessions (the workers) can lag until it syncs;
            # NOOP syncs it, so a message just marked seen is not listed (and queued) again.
            box.client.noop()
            return sorted(box.uids("UNSEEN"), key=int)

    def size(self, key: str) -> int | None:
        """RFC822.SIZE, which the server reports without sending the message."""
        for sync in (False, True):
            with self._guard("fetch size") as box:
                if sync:
                    # This session may not know the UID yet (the mail came after its last command,
                    # e.g. moved back from the rejects folder): NOOP syncs its view, then ask again.
                    box.client.noop()
                typ, data = box.client.uid("FETCH", key, "(RFC822.SIZE)")
            _expect_ok(typ, data, "fetch size")
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                if isinstance(line, bytes) and (found := SIZE.search(line)):
                    return int(found.group(1))
        return None  # no FETCH response, even after a sync: the UID is gone

    def read(self, key: str, offset: int, length: int) -> bytes:
        """A partial fetch, BODY.PEEK[]<offset.length>, which leaves the Seen flag alone."""
        with self._guard("fetch") as box:
            typ, data = box.client.uid("FETCH", key, f"(BODY.PEEK[]<{offset}.{length}>)")
        _expect_ok(typ, data, "fetch")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return item[1]
        return b""

    def mark_seen(self, key: str) -> None:
        """Add the Seen flag (without the EXPUNGE that imap-tools' flag() sends)."""
        with self._guard("store") as box:
            typ, data = box.client.uid("STORE", key, "+FLAGS.SILENT", r"(\Seen)")
        _expect_ok(typ, data, "store")

    def reject(self, key: str) -> None:
        """Mark seen, then move to the rejects folder (created on first use)."""
        self.mark_seen(key)
        folder = self.settings.rejects_folder
        with self._guard("move") as box:
            if not self._rejects_ready:
                if not box.folder.exists(folder):
                    with contextlib.suppress(ImapToolsError):  # another worker created it meanwhile
                        box.folder.create(folder)
                self._rejects_ready = True
            box.move(key, folder)

    def restore(self, message_id: str) -> int:
        """In the rejects folder: find by HEADER Message-ID, clear Seen, then MOVE back to the folder.

        Seen is cleared while the message is still in the rejects folder, where its UID is known;
        after the move it has a new UID in the folder, and arrives there unseen.
        """
        s = self.settings
        with self._guard("restore") as box:
            if not box.folder.exists(s.rejects_folder):
                return 0
            box.folder.set(s.rejects_folder)
            try:
                # HEADER search matches substrings: only an exact Message-ID counts.
                uids = [msg.uid for msg in box.fetch(AND(header=H("Message-ID", message_id)), mark_seen=False,
                                                     headers_only=True, bulk=True)
                        if msg.uid and _header(msg.headers, "message-id") == message_id]
                if uids:
                    typ, data = box.client.uid("STORE", ",".join(uids), "-FLAGS.SILENT", r"(\Seen)")
                    _expect_ok(typ, data, "store")
                    box.move(uids, s.folder)
            finally:
                box.folder.set(s.folder)
        return len(uids)

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> bool:
        """IMAP IDLE for up to `timeout` seconds; True when the server announced new mail."""
        with self._guard("idle") as box:
            box.idle.start()
            notified = self._idle_poll(box, timeout, stop)
            box.idle.stop()
        return notified

    def close(self) -> None:
        """Log out (best effort) and forget the connection."""
        box, self._box = self._box, None
        if box is not None:
            _drop(box, logout=True)

    def _idle_poll(self, box: BaseMailBox, timeout: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Short select slices keep a stop prompt; a dropped connection shows up as EOF here. Lines
            # already buffered come first: one segment can carry several (`* 1 EXPUNGE`, `* 0 RECENT`,
            # then `* 1 EXISTS`), and select() sees only what is still in the socket.
            if not _buffered(box):
                readable, _, _ = select.select([box.client.sock], [], [], min(0.25, remaining))
                if not readable:
                    continue
            line = box.client._get_line()
            if line.startswith(b"* BYE"):
                raise MailboxError(f"server closed the connection: {line.decode(errors='replace')}")
            if line.endswith(b"EXISTS"):
                return True
        return False

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[BaseMailBox]:
        if self._box is None:
            self.connect()
        box = self._box
        assert box is not None, "connect() either sets the box or raises"
        try:
            yield box
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            # The connection is in an unknown state: drop it so the next call starts clean.
            self.close()
            raise MailboxError(f"{self.description}: {action} failed: {_describe(exc)}") from None


def _buffered(box: BaseMailBox) -> bool:
    """Whether the connection holds unread data (in imaplib's buffer or TLS's), checked without blocking."""
    sock = box.client.sock
    file = box.client.file
    assert isinstance(file, io.BufferedReader), "imaplib reads through sock.makefile('rb')"
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return bool(file.peek(1))
    except ssl.SSLWantReadError:
        return False  # TLS without data to read yet
    finally:
        sock.settimeout(timeout)


def _header(headers: Mapping[str, tuple[str, ...]], name: str) -> str:
    values = headers.get(name) or ("",)
    return values[0].strip()


def _expect_ok(typ: str, data: list, action: str) -> None:
    if typ != "OK":
        raise MailboxError(f"IMAP {action} answered {typ}: {_server_text((typ, data))}")


def _server_text(result: tuple) -> str:
    _typ, data = result
    parts = [item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in data or []]
    return " ".join(parts) or "no reason given"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _drop(box: BaseMailBox, logout: bool = False) -> None:
    with contextlib.suppress(Exception):
        if logout:
            box.client.logout()
        else:
            box.client.shutdown()
