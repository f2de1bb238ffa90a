"""The control plane's waitress server: JSON errors, bodies screened before reading, probe threads, eviction.

Written against waitress 3.0.2's internals (`HTTPChannel.error_task_class`, `parser_class`,
`BaseWSGIServer.add_task`, `readable`, `maintenance`), which is why the version is pinned;
tests/control/test_waitress_ext.py fails when an upgrade changes what this relies on.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import Error

WAITRESS_VERSION = "3.0.2"

# waitress's error texts that never contain request content. The others quote the offending
# line (a header with a bearer token in it, say) and are replaced by their reason alone.
SAFE_DETAILS = frozenset({
    "HTTP message header invalid", "Bare CR or LF found in HTTP message", "Invalid header",
    "Start line is invalid", "Content-Length is invalid", "Bad URI", "Chunk not properly terminated",
    "Invalid chunk extension", "Invalid chunk size", "Transfer-Encoding requested is not supported.",
})
QUOTING_DETAILS = ("Bare CR or LF found in header line", "Malformed header line", "Malformed HTTP method")
SIZE_DETAIL = re.compile(r"exceeds max_(body|header) of (\d+)")
# After an error answer, what the client still sends (the refused body, say) is read and dropped
# for at most this long and this much, so that closing does not reset the connection under it.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
# What every answer the server writes itself carries, on the API and the console alike: JSON that
# nothing may run a script from, frame, sniff as another type, cache or follow with a referrer.
SAFE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "same-origin"),
)


class Refusal(Error):
    """An answer given from the request's headers alone, before its body is read (401, 403, ...)."""

    def __init__(self, code: int, reason: str, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.headers = list(headers)


def describe(error: Error) -> str:
    """A message for one of waitress's errors that repeats nothing of the request."""
    if isinstance(error, Refusal):
        return error.body
    detail = str(error.body)
    size = SIZE_DETAIL.fullmatch(detail)
    if size is not None:
        what = "request body" if size.group(1) == "body" else "request line and headers"
        setting = " (platform.control.max_body)" if size.group(1) == "body" else ""
        return f"the {what} must be smaller than {size.group(2)} bytes{setting}"
    if error.code >= 500 and error.code != 501:
        return "internal error; the runtime's log has the details"
    if detail in SAFE_DETAILS:
        return f"malformed request: {detail.rstrip('.')}"
    quoted = next((prefix for prefix in QUOTING_DETAILS if detail.startswith(prefix)), None)
    if quoted is not None:
        return f"malformed request: {quoted}"
    return f"malformed request: {error.reason}"


class JsonErrorTask(ErrorTask):
    """Answers waitress's own errors (malformed requests, 413, 431, refusals) as `{"error": ...}`."""

    def execute(self) -> None:
        """Write the JSON answer and close the connection after it."""
        error = self.request.error
        body = json.dumps({"error": describe(error)}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), *SAFE_HEADERS,
                                      *getattr(error, "headers", ())])
        self.set_close_on_finish()
        self.channel.linger_on_close = True
        self.content_length = len(body)
        self.write(body)


class ScreeningParser(HTTPRequestParser):
    """waitress's parser, asking `screen` about a request with a body once its headers are in.

    A refused request is complete at once: its body is never read, and no `100 Continue` invites it.
    """

    error: Error | None
    completed: bool

    def __init__(self, adj: Any, screen: Callable[[str, str, dict[str, str]], Refusal | None] | None) -> None:
        super().__init__(adj)
        self._screen = screen
        self._screened = screen is None

    def received(self, data: bytes) -> int:
        """Parse `data`; once the headers are complete, screen the request before any body byte."""
        consumed = super().received(data)
        if self._screen is not None and self.headers_finished and not self._screened:
            self._screened = True
            if self.error is None and not self.completed and self.body_rcv is not None:
                self.error = self._screen(self.command, self.path, self.headers)
                self.completed = self.error is not None
        if self.error is not None:
            self.expect_continue = False
        return consumed


class ControlChannel(HTTPChannel):
    """A connection that answers errors as JSON, screens bodies, and knows when its current request began."""

    error_task_class = JsonErrorTask
    request_started = 0.0
    linger_on_close = False
    lingering_until: float | None = None
    lingered = 0

    def parser_class(self, adj: Any) -> ScreeningParser:
        """A parser for the next request (waitress calls `self.parser_class(adj)`)."""
        screen = self.server.screen
        if screen is None:
            return ScreeningParser(adj, None)
        peer = self.addr[0] if isinstance(self.addr, tuple) else None
        return ScreeningParser(adj, lambda method, path, headers: screen(method, path, headers, peer))

    def received(self, data: bytes) -> bool:
        """Note when a new request starts arriving, then parse as waitress does."""
        if self.request is None:
            self.request_started = time.monotonic()
        return super().received(data)

    def handle_close(self) -> None:
        """Close; after an error answer, first stop sending and drop what still arrives for a moment.

        Closing a socket with unread data makes the kernel reset the connection, which can
        destroy the answer before the client has read it (a 413 while it still sends its body).
        """
        if not self.linger_on_close or self.lingering_until is not None or not self.connected:
            super().handle_close()
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            super().handle_close()
            return
        self.lingering_until = time.monotonic() + LINGER_SECONDS
        self.will_close = self.close_when_flushed = False

    def readable(self) -> bool:
        """Read while lingering (to drop it), else as waitress decides."""
        return True if self.lingering_until is not None else super().readable()

    def writable(self) -> bool:
        """Nothing is written while lingering; a close request (the timeout) still is handled."""
        return self.will_close if self.lingering_until is not None else super().writable()

    def handle_read(self) -> None:
        """Drop what arrives while lingering, closing on end of stream or past the bounds; else parse it."""
        if self.lingering_until is None:
            super().handle_read()
            return
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError:
            data = b""
        self.lingered += len(data)
        if not data or self.lingered > LINGER_BYTES or time.monotonic() > self.lingering_until:
            super().handle_close()

    def idle(self) -> bool:
        """Nothing being answered, sent or about to close: closing it loses no request."""
        return not (self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed)


class ControlWSGIServer(TcpWSGIServer):
    """waitress's TCP server with a separate thread pool for probes and limits against idle and slow clients.

    - Probes (`probe_paths`, GET or HEAD) go to `probe_threads` threads of their own.
    - A connection that takes longer than `request_timeout` to send one request is closed.
    - Near `connection_limit`, the connections idle the longest are closed, keeping `reserve`
      slots free so that new connections are accepted at once rather than left in the backlog.
    """

    channel_class = ControlChannel

    def __init__(self, app: Any, adj: Any, *, request_timeout: float, reserve: int, probe_paths: frozenset[str],
                 probe_threads: int,
                 screen: Callable[[str, str, dict[str, str], str | None], Refusal | None] | None) -> None:
        self.request_timeout = request_timeout
        self.reserve = min(reserve, max(adj.connection_limit // 4, 1))
        self.probe_paths = probe_paths
        self.screen = screen
        self.probe_dispatcher = ThreadedTaskDispatcher()
        self.probe_dispatcher.set_thread_count(probe_threads)
        try:
            super().__init__(app, map={}, adj=adj, sockinfo=adj.listen[0])
        except BaseException:
            self.probe_dispatcher.shutdown(timeout=1)
            raise

    def add_task(self, task: Any) -> None:
        """Queue a channel with a complete request on the probe threads or the request threads."""
        # Called with the channel's requests_lock held, so requests[0] is the one to be served.
        request = task.requests[0] if task.requests else None
        if request is not None and request.error is None and request.command in ("GET", "HEAD") \
                and request.path in self.probe_paths:
            self.probe_dispatcher.add_task(task)
        else:
            self.task_dispatcher.add_task(task)

    def readable(self) -> bool:
        """Make room near the connection limit, then let waitress decide whether to accept."""
        if self.accepting and len(self._map) >= self.adj.connection_limit - self.reserve:
            self._close_longest_idle()
        return super().readable()

    def maintenance(self, now: float) -> None:
        """Close idle connections (waitress: `channel_timeout`) and ones too slow to send a request."""
        super().maintenance(now)
        now_monotonic = time.monotonic()
        cutoff = now_monotonic - self.request_timeout
        for channel in list(self.active_channels.values()):
            slow = channel.request is not None and not channel.requests and channel.request_started < cutoff
            if slow or (channel.lingering_until is not None and channel.lingering_until < now_monotonic):
                channel.will_close = True

    def _close_longest_idle(self) -> None:
        # Marked, not closed: the loop is iterating over the map and will poll these once more.
        # A marked channel is closed by the loop at its next write event, at once.
        channels = list(self.active_channels.values())
        closing = sum(1 for channel in channels if channel.will_close or channel.close_when_flushed)
        excess = len(self._map) - closing - (self.adj.connection_limit - self.reserve) + 1
        if excess <= 0:
            return
        idle = sorted((channel for channel in channels if channel.idle()), key=lambda channel: channel.last_activity)
        for channel in idle[:excess]:
            channel.will_close = True
