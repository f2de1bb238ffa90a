"""Where order mail comes from: a MailboxClient over a local Maildir or an IMAP server."""

from __future__ import annotations

import abc
import contextlib
import imaplib
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imap_tools import MailBox, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError


class MailboxError(Exception):
    """The mailbox cannot be used right now (unreachable, dropped, refused); worth retrying later."""


class MailboxAuthError(MailboxError):
    """The server refused the login; retrying helps only once the credentials or account are fixed."""


class MailboxClient(abc.ABC):
    """One connection to a mailbox; not shared between threads (see MailboxPool)."""

    description: str = "mailbox"

    @abc.abstractmethod
    def connect(self) -> None:
        """Open and authenticate; raises MailboxError (MailboxAuthError for a refused login)."""

    @abc.abstractmethod
    def unseen(self) -> list[str]:
        """Keys of the messages not yet marked seen, oldest first."""

    @abc.abstractmethod
    def fetch(self, key: str) -> bytes | None:
        """The raw message, without marking it seen; None when it is no longer there."""

    @abc.abstractmethod
    def mark_seen(self, key: str) -> None:
        """Mark the message seen: it is done."""

    @abc.abstractmethod
    def reject(self, key: str) -> None:
        """Mark the message seen and move it to the rejects folder, creating that folder if needed."""

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> bool:
        """Block until new mail may have arrived, `timeout` passed or `stop` is set; True on a notification."""
        stop.wait(timeout)
        return False

    def close(self) -> None:
        """Release the connection; safe to call twice."""


class MaildirMailbox(MailboxClient):
    """A local Maildir: unseen mail is in `new/` (or in `cur/` without the S flag); rejects go to `.Rejected`."""

    _names = itertools.count()

    def __init__(self, root: str | Path, rejects: str = "Rejected") -> None:
        self.root = Path(root)
        self.rejects = self.root / f".{rejects}"
        self.description = f"maildir {self.root}"

    def connect(self) -> None:
        """Check the folder is a maildir."""
        if not all((self.root / sub).is_dir() for sub in ("new", "cur", "tmp")):
            raise MailboxError(f"{self.root} is not a maildir (needs new/, cur/ and tmp/)")

    def create(self) -> None:
        """Create the maildir folders if missing."""
        for sub in ("new", "cur", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def deliver(self, raw: bytes) -> str:
        """Add a message to `new/` the maildir way (write to tmp/, then rename); returns its key."""
        key = f"{time.time_ns()}.P{os.getpid()}Q{next(self._names)}.{socket.gethostname().replace('/', '_')}"
        tmp = self.root / "tmp" / key
        tmp.write_bytes(raw)
        tmp.rename(self.root / "new" / key)
        return key

    def unseen(self) -> list[str]:
        """Keys in new/ and unflagged keys in cur/, in delivery order."""
        try:
            fresh = [path.name for path in (self.root / "new").iterdir()]
            unread = [path.name.split(":", 1)[0] for path in (self.root / "cur").iterdir()
                      if "S" not in _flags(path.name)]
        except OSError as exc:
            raise MailboxError(f"{self.description}: {exc.strerror or exc}") from None
        return sorted(fresh + unread)

    def fetch(self, key: str) -> bytes | None:
        """The message's bytes, wherever it is in the maildir."""
        path = self._find(key)
        if path is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            return path.read_bytes()
        return None

    def mark_seen(self, key: str) -> None:
        """Move the message to cur/ with the S flag."""
        self._move(key, self.root / "cur")

    def reject(self, key: str) -> None:
        """Move the message, seen, into the `.Rejected` sub-maildir."""
        for sub in ("new", "cur", "tmp"):
            (self.rejects / sub).mkdir(parents=True, exist_ok=True)
        self._move(key, self.rejects / "cur")

    def _move(self, key: str, folder: Path) -> None:
        path = self._find(key)
        if path is None:
            return  # already moved by an earlier attempt
        flags = "".join(sorted(set(_flags(path.name)) | {"S"}))
        try:
            path.rename(folder / f"{key}:2,{flags}")
        except FileNotFoundError:
            return  # another attempt moved it meanwhile
        except OSError as exc:
            raise MailboxError(f"{self.description}: cannot move {key}: {exc.strerror or exc}") from None

    def _find(self, key: str) -> Path | None:
        fresh = self.root / "new" / key
        if fresh.exists():
            return fresh
        return next((self.root / "cur").glob(f"{_glob_escape(key)}:2,*"), None)


@dataclass(frozen=True)
class ImapSettings:
    """How to reach and log in to the IMAP server."""

    host: str
    port: int = 993
    ssl: bool = True
    user: str = ""
    password: str = ""
    folder: str = "INBOX"
    rejects_folder: str = "Rejected"
    timeout: float = 30.0


class ImapMailbox(MailboxClient):
    """One IMAP connection (imap-tools), opened lazily and reopened after a failure."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.description = f"imap {settings.user}@{settings.host}:{settings.port}/{settings.folder}"
        self._box: MailBox | MailBoxUnencrypted | None = None
        self._rejects_ready = False

    def connect(self) -> None:
        """Connect (implicit TLS unless `ssl` is false) and log in, selecting the folder."""
        self.close()
        s = self.settings
        cls = MailBox if s.ssl else MailBoxUnencrypted
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

    def fetch(self, key: str) -> bytes | None:
        """The raw message via BODY.PEEK[], which leaves the Seen flag alone."""
        with self._guard("fetch") as box:
            typ, data = box.client.uid("FETCH", key, "(BODY.PEEK[])")
        _expect_ok(typ, data, "fetch")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return item[1]
        return None

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

    def _idle_poll(self, box: MailBox, timeout: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Short select slices keep a stop prompt; a dropped connection shows up as EOF here.
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
    def _guard(self, action: str) -> Iterator[MailBox]:
        if self._box is None:
            self.connect()
        try:
            yield self._box
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            # The connection is in an unknown state: drop it so the next call starts clean.
            self.close()
            raise MailboxError(f"{self.description}: {action} failed: {_describe(exc)}") from None


class MailboxPool:
    """One MailboxClient per thread, because IMAP connections cannot be shared between threads."""

    def __init__(self, factory: Callable[[], MailboxClient]) -> None:
        self.factory = factory
        self._local = threading.local()
        self._clients: list[MailboxClient] = []
        self._lock = threading.Lock()

    def get(self) -> MailboxClient:
        """This thread's client, created on first use."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.factory()
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every client the pool made."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()


def _flags(name: str) -> str:
    return name.split(":2,", 1)[1] if ":2," in name else ""


def _glob_escape(key: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in key)


def _expect_ok(typ: str, data: list, action: str) -> None:
    if typ != "OK":
        raise MailboxError(f"IMAP {action} answered {typ}: {_server_text((typ, data))}")


def _server_text(result: tuple) -> str:
    _typ, data = result
    parts = [item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in data or []]
    return " ".join(parts) or "no reason given"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _drop(box: MailBox, logout: bool = False) -> None:
    with contextlib.suppress(Exception):
        if logout:
            box.client.logout()
        else:
            box.client.shutdown()
