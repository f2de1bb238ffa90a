"""Where order mail comes from: the MailboxClient contract, a local Maildir, and the IMAP settings.

The IMAP client itself lives in `mail_order_bot.imap`, so imap-tools loads only when it is used.
"""

from __future__ import annotations

import abc
import contextlib
import email.parser
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


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
    def size(self, key: str) -> int | None:
        """The message's size in bytes, without reading it; None when it is no longer there."""

    @abc.abstractmethod
    def read(self, key: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of the raw message from `offset`, without marking it seen; b"" past its end."""

    def chunks(self, key: str, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The raw message in pieces of at most `chunk` bytes, so it is never read whole into memory."""
        offset = 0
        while offset < size:
            piece = self.read(key, offset, min(chunk, size - offset))
            if not piece:
                return
            offset += len(piece)
            yield piece

    @abc.abstractmethod
    def mark_seen(self, key: str) -> None:
        """Mark the message seen: it is done."""

    @abc.abstractmethod
    def reject(self, key: str) -> None:
        """Mark the message seen and move it to the rejects folder, creating that folder if needed."""

    @abc.abstractmethod
    def restore(self, message_id: str) -> int:
        """Move the messages whose Message-ID header is `message_id` from the rejects folder back, unseen; how many.

        0 when the rejects folder holds no such message (or does not exist).
        """

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

    def size(self, key: str) -> int | None:
        """The file's size, from the directory entry."""
        path = self._find(key)
        if path is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_size
        return None

    def read(self, key: str, offset: int, length: int) -> bytes:
        """Part of the file, wherever it is in the maildir."""
        path = self._find(key)
        if path is None:
            return b""
        try:
            with path.open("rb") as file:
                file.seek(offset)
                return file.read(length)
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise MailboxError(f"{self.description}: cannot read {key}: {exc.strerror or exc}") from None

    def mark_seen(self, key: str) -> None:
        """Move the message to cur/ with the S flag."""
        self._move(key, self.root / "cur")

    def reject(self, key: str) -> None:
        """Move the message, seen, into the `.Rejected` sub-maildir."""
        for sub in ("new", "cur", "tmp"):
            (self.rejects / sub).mkdir(parents=True, exist_ok=True)
        self._move(key, self.rejects / "cur")

    def restore(self, message_id: str) -> int:
        """Move each matching message from `.Rejected` back to `new/`, where it is unseen."""
        moved = 0
        for path in self._rejected(message_id):
            try:
                path.rename(self.root / "new" / path.name.split(":", 1)[0])
            except FileNotFoundError:
                continue  # another retry moved it meanwhile
            except OSError as exc:
                raise MailboxError(f"{self.description}: cannot move {path.name} back: {exc.strerror or exc}") from None
            moved += 1
        return moved

    def _rejected(self, message_id: str) -> list[Path]:
        found = []
        for sub in ("cur", "new"):
            try:
                paths = sorted((self.rejects / sub).iterdir())
            except FileNotFoundError:
                continue  # nothing was ever rejected
            except OSError as exc:
                raise MailboxError(f"{self.description}: cannot list {self.rejects / sub}: "
                                   f"{exc.strerror or exc}") from None
            found += [path for path in paths if _message_id(path) == message_id]
        return found

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
    """How to reach and log in to the IMAP server; the defaults live in `config.SETTINGS`."""

    host: str
    port: int
    ssl: bool
    user: str
    password: str
    folder: str
    rejects_folder: str
    idle_timeout: float
    timeout: float


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


def _message_id(path: Path, limit: int = 256 * 1024) -> str | None:
    """The Message-ID header of a maildir file, read from its header block only (at most `limit` bytes)."""
    lines = []
    try:
        with path.open("rb") as file:
            for line in file:
                if not line.strip(b"\r\n") or limit <= 0:
                    break
                lines.append(line)
                limit -= len(line)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MailboxError(f"cannot read {path}: {exc.strerror or exc}") from None
    value = email.parser.BytesHeaderParser().parsebytes(b"".join(lines)).get("Message-ID")
    return str(value).strip() if value is not None else None


def _flags(name: str) -> str:
    return name.split(":2,", 1)[1] if ":2," in name else ""


def _glob_escape(key: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in key)
