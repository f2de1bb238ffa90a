"""AppendWriter: whole lines appended to a file in batches, safe for several threads and processes."""

from __future__ import annotations

import collections
import os
import threading
import weakref
from pathlib import Path

# Lines are written when this many bytes wait, every FLUSH_INTERVAL seconds, and at close.
FLUSH_BYTES = 64 * 1024
FLUSH_INTERVAL = 0.2


class AppendWriter:
    """Buffers lines and appends them with one `os.write` of whole lines on an `O_APPEND` descriptor.

    Each write lands at the end of the file as a unit, so lines from other threads or processes
    appending to the same file never interleave inside a line. A background thread writes what
    waits every `flush_interval` seconds, so a process that dies loses at most that much and
    readers see lines soon; `close()` writes the rest. The file is opened at the first line:
    failing to open it raises from `write` (the line is refused); a failed write drops the lines
    it carried, is kept in `failure` until a later write succeeds, and the file is opened again.
    """

    def __init__(self, path: str | Path, *, flush_bytes: int = FLUSH_BYTES,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        self.path = Path(path)
        self.flush_bytes = flush_bytes
        self.flush_interval = flush_interval
        self.failure: str | None = None
        self.lost = 0
        # _io is held while writing to (or opening) the file. Lines wait in a deque that writers
        # append to and the one holding _io pops from, both atomic: adding a line takes no lock.
        self._io = threading.Lock()
        self._pending: collections.deque[str] = collections.deque()
        self._size = 0  # bytes waiting, roughly: it only decides when to write
        self._fd: int | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        _writers.add(self)

    def write(self, line: str) -> None:
        """Queue one line (ending in a newline); raises when the file cannot be opened."""
        if self._fd is None:
            with self._io:
                if self._fd is None:
                    self._open()
        self._pending.append(line)
        self._size += len(line)
        # Only one thread writes a full buffer; the others go on (their lines wait for the next write).
        if self._size >= self.flush_bytes and self._io.acquire(blocking=False):
            try:
                self._write_out()
            finally:
                self._io.release()
        if self._flusher is None:
            self._start_flusher()

    def flush(self) -> None:
        """Write every queued line now."""
        with self._io:
            self._write_out()

    def close(self) -> None:
        """Write every queued line, stop the flusher and close the file; a later `write` opens it again."""
        flusher, self._flusher = self._flusher, None
        self._stop.set()
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(5)
        with self._io:
            self._write_out()
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)

    def _write_out(self) -> None:
        """Write the queued lines in one call; the caller holds `_io`."""
        pending, self._size = self._pending, 0
        lines = [pending.popleft() for _ in range(len(pending))]
        if not lines:
            return
        data = memoryview("".join(lines).encode("utf-8"))
        try:
            if self._fd is None:
                self._open()
            while data:  # a regular file takes it all at once; the loop only covers an interrupted write
                data = data[os.write(self._fd, data):]  # type: ignore[arg-type]
        except OSError as exc:
            self.lost += len(lines)
            self.failure = f"{len(lines)} span(s) not written to {self.path}: {type(exc).__name__}: {exc}"
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
        else:
            self.failure = None

    def _start_flusher(self) -> None:
        with self._io:
            if self._flusher is not None:
                return
            self._stop = threading.Event()
            self._flusher = threading.Thread(target=self._flush_periodically, args=(self._stop,),
                                             name="plba-trace-writer", daemon=True)
            self._flusher.start()

    def _flush_periodically(self, stop: threading.Event) -> None:
        while not stop.wait(self.flush_interval):
            self.flush()

    def _forget_parent(self) -> None:
        # A forked child inherits the parent's queued lines (the parent writes them), its lock in
        # whatever state, and no flusher thread: start afresh, keeping the shared O_APPEND descriptor.
        self._io = threading.Lock()
        self._pending, self._size = collections.deque(), 0
        self._flusher = None


# Every writer alive, so that a forked child resets them at the fork rather than each `write`
# asking for the process id (a system call on every line).
_writers: weakref.WeakSet[AppendWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._forget_parent()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_after_fork_in_child)
