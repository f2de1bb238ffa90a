"""SIGINT and SIGTERM as stop requests while a runtime runs in the foreground (`RuntimeManager.run()`)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger("plba.runtime")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[bool], None]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call `request_stop(force)`; the previous handlers come back after.

    The first signal asks for a graceful stop, a second SIGINT forces. Off the main thread, where
    Python cannot install handlers, the block runs without them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        force = len(received) > 1 and signum == signal.SIGINT
        logger.warning("%s received: %s", signal.Signals(signum).name,
                       "forcing stop" if force else "stopping gracefully (SIGINT again forces)")
        request_stop(force)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
