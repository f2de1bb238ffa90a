"""ControlServer: runs the control app under waitress in a named thread, keeps it answering, stops it without leaks."""

from __future__ import annotations

import errno
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plba.errors import ControlPlaneError

if TYPE_CHECKING:
    from plba.control.waitress_ext import Refusal

logger = logging.getLogger("plba.control")

# How long stop() waits for the loop thread and for request threads to finish their current request.
STOP_GRACE = 5.0
IDLE_POLL = 0.01
# Liveness and readiness are answered by threads of their own, so a slow endpoint, a hanging health
# check or a flood of other requests never leaves a probe waiting for a request thread.
PROBE_PATHS = frozenset({"/health/live", "/health/ready"})
PROBE_THREADS = 2
# Slots kept free below connection_limit by closing the longest-idle connections, so a new
# connection (a probe above all) is accepted at once instead of waiting in the listen backlog.
RESERVE = 8
# Request line plus headers; bigger is answered 431. Browsers with a few cookies stay far below.
MAX_HEADER = 32 * 1024
# How often idle and slow connections are looked for.
CLEANUP_INTERVAL = 1

# (method, path, headers) -> a Refusal to answer before the body is read, or None to read it.
# (method, path, headers, peer address) -> the refusal to answer before the body is read, or None.
Screen = Callable[[str, str, dict[str, str], "str | None"], "Refusal | None"]


@dataclass(frozen=True)
class Limits:
    """The `platform.control` limits that keep the server answering under load."""

    threads: int
    connection_limit: int
    channel_timeout: float
    request_timeout: float
    max_body: int

    @classmethod
    def read(cls, settings: Any) -> Limits:
        """The limits in `settings` (their defaults are declared with the other platform settings)."""
        return cls(threads=int(settings.get("platform.control.threads")),
                   connection_limit=int(settings.get("platform.control.connection_limit")),
                   channel_timeout=float(settings.get("platform.control.channel_timeout")),
                   request_timeout=float(settings.get("platform.control.request_timeout")),
                   max_body=int(settings.get("platform.control.max_body")))


class ControlServer:
    """The control plane of one runtime: `start()` binds at once, `stop()` leaves no thread or port behind."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.host = str(runtime.settings.get("platform.control.host"))
        self.requested_port = int(runtime.settings.get("platform.control.port"))
        self.limits = Limits.read(runtime.settings)
        self.port: int | None = None
        self.app: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. `http://127.0.0.1:8080`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve from a thread; ControlPlaneError (exit code 2) when the address cannot be used."""
        from plba.control.app import create_app, refusal_before_body

        self.app = create_app(self.runtime)
        app = self.app
        self._server = serve(app, self.host, self.requested_port, self.limits,
                             screen=functools.partial(refusal_before_body, app))
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, name="plba-control", daemon=True)
        self._thread.start()
        logger.info("control plane listening on %s", self.url)

    def stop(self) -> None:
        """Close every connection (keep-alive ones too), stop the request threads and join the loop."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        shutdown(server, thread)
        self.app.extensions["plba"].join_stop(STOP_GRACE)
        logger.info("control plane stopped")


def serve(app: Any, host: str, port: int, limits: Limits, screen: Screen | None = None) -> Any:
    """A waitress server bound to `host:port` but not yet running; ControlPlaneError when binding fails."""
    from waitress.adjustments import Adjustments

    from plba.control.waitress_ext import ControlWSGIServer

    adj = Adjustments(host=host, port=port, threads=limits.threads, ident="plba", clear_untrusted_proxy_headers=True,
                      connection_limit=limits.connection_limit, channel_timeout=limits.channel_timeout,
                      cleanup_interval=CLEANUP_INTERVAL, max_request_body_size=limits.max_body,
                      max_request_header_size=MAX_HEADER, asyncore_use_poll=True)
    if len(adj.listen) != 1:
        # A host name resolving to several addresses would need one server per address.
        raise ControlPlaneError(f"control plane: platform.control.host {host!r} resolves to several addresses; "
                                f"give a literal address such as 127.0.0.1")
    try:
        return ControlWSGIServer(app, adj, request_timeout=limits.request_timeout, reserve=RESERVE,
                                 probe_paths=PROBE_PATHS, probe_threads=PROBE_THREADS, screen=screen)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower()
        raise ControlPlaneError(f"control plane: cannot listen on {host}:{port}: {reason} "
                                f"(set platform.control.port, or 0 for any free port)") from None


def shutdown(server: Any, thread: threading.Thread | None) -> None:
    """Stop a server started by `serve()` running in `thread`: connections, loop, request threads, trigger."""
    if thread is not None and thread.is_alive():
        # A request being answered right now (the stop action's 202, above all) is let finish
        # sending first: when nothing needed draining, stop() comes within milliseconds of it.
        _wait_idle(server, STOP_GRACE)
        # waitress has no public stop, and its loop only ends once its socket map is empty. The
        # map belongs to the loop thread, so the channels are closed there. The trigger's pipe
        # stays open: the loop may run this thunk before our own write to the pipe happens, and
        # request threads still write to it when they finish.
        server.trigger.pull_trigger(lambda: close_channels(server))
        thread.join(STOP_GRACE)
    if thread is None or thread.is_alive():
        close_channels(server)
    dispatchers = (server.task_dispatcher, server.probe_dispatcher)
    for dispatcher in dispatchers:
        dispatcher.shutdown(timeout=STOP_GRACE)
    # Closed only once no request thread is left to pull it: a write to a closed pipe raises
    # EBADF, and one to a reused descriptor number would land in some other file.
    if not any(dispatcher.threads for dispatcher in dispatchers):
        server.trigger.close()


def _wait_idle(server: Any, limit: float) -> None:
    """Wait up to `limit` seconds until no request is being handled and every answer is sent."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and _busy(server):
        time.sleep(IDLE_POLL)


def _busy(server: Any) -> bool:
    # Read from another thread without waitress's locks: a stale reading costs one more poll.
    for dispatcher in (server.task_dispatcher, server.probe_dispatcher):
        if dispatcher.active_count or dispatcher.queue:
            return True
    return any(getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0)
               for channel in list(server._map.values()))


def close_channels(server: Any) -> None:
    """Close the listening socket and every client channel, and take the trigger out of the map.

    That empties waitress's map, which ends its loop; the trigger itself is closed by `shutdown()`.
    """
    from waitress import wasyncore

    for channel in list(server._map.values()):
        try:
            if channel is server.trigger:
                channel.del_channel()
            elif channel is server:
                # BaseWSGIServer.close() would close the trigger too.
                wasyncore.dispatcher.close(server)
            else:
                channel.close()
        except OSError:  # already gone on the client side; nothing left to release
            pass

