"""ControlServer: runs the control app under waitress in a named thread and stops it without leaks."""

from __future__ import annotations

import errno
import logging
import threading
import time
from typing import Any

from plba.errors import ControlPlaneError

logger = logging.getLogger("plba.control")

DEFAULT_THREADS = 4
# How long stop() waits for the loop thread and for request threads to finish their current request.
STOP_GRACE = 5.0
IDLE_POLL = 0.01


class ControlServer:
    """The control plane of one runtime: `start()` binds at once, `stop()` leaves no thread or port behind."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.host = str(runtime.settings.get("platform.control.host", "127.0.0.1"))
        self.requested_port = int(runtime.settings.get("platform.control.port", 8080))
        self.threads = int(runtime.settings.get("platform.control.threads", DEFAULT_THREADS))
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
        from plba.control.app import create_app

        self.app = create_app(self.runtime)
        self._server = serve(self.app, self.host, self.requested_port, self.threads)
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
        if thread is not None and thread.is_alive():
            # A request being answered right now (the stop action's 202, above all) is let finish
            # sending first: when nothing needed draining, stop() comes within milliseconds of it.
            _wait_idle(server, STOP_GRACE)
            # waitress has no public stop, and its loop only ends once its socket map is empty.
            # The map belongs to the loop thread, so the channels are closed there.
            server.trigger.pull_trigger(lambda: close_all_channels(server))
            thread.join(STOP_GRACE)
        if thread is None or thread.is_alive():
            close_all_channels(server)
        server.task_dispatcher.shutdown(timeout=STOP_GRACE)
        self.app.extensions["plba"].join_stop(STOP_GRACE)
        logger.info("control plane stopped")


def serve(app: Any, host: str, port: int, threads: int) -> Any:
    """A waitress server bound to `host:port` but not yet running; ControlPlaneError when binding fails."""
    from waitress import create_server

    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="plba",
                               clear_untrusted_proxy_headers=True)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower()
        raise ControlPlaneError(f"control plane: cannot listen on {host}:{port}: {reason} "
                                f"(set platform.control.port, or 0 for any free port)") from None
    if not hasattr(server, "socket"):
        # A host name resolving to several addresses yields a multi-socket server we cannot manage.
        server.close()
        raise ControlPlaneError(f"control plane: platform.control.host {host!r} resolves to several addresses; "
                                f"give a literal address such as 127.0.0.1")
    return server


def _wait_idle(server: Any, limit: float) -> None:
    """Wait up to `limit` seconds until no request is being handled and every answer is sent."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and _busy(server):
        time.sleep(IDLE_POLL)


def _busy(server: Any) -> bool:
    # Read from another thread without waitress's locks: a stale reading costs one more poll.
    dispatcher = server.task_dispatcher
    if dispatcher.active_count or dispatcher.queue:
        return True
    return any(getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0)
               for channel in list(server._map.values()))


def close_all_channels(server: Any) -> None:
    """Close the listening socket, every client channel and the trigger, emptying waitress's map."""
    for channel in list(server._map.values()):
        try:
            channel.close()
        except OSError:  # already gone on the client side; nothing left to release
            pass
