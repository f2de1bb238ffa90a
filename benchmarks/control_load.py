"""Probe latency under hostile load: `/health/live` and `/health/ready` timed while the control plane is abused.

Each scenario runs against one runtime (control plane on a free loopback port, default limits):

- idle: 400 keep-alive connections opened and left silent (more than `connection_limit`);
- slow: 300 connections sending their request line one byte every half second (slowloris);
- flood: 8 threads sending `GET /status` back to back on keep-alive connections;
- hanging check: a critical health check that never answers, with 20 `GET /health` pending.

A probe is a new connection plus one request, as an orchestrator sends it. The reference is the
same probes on the idle server, measured in the same run. Goal: every probe answers within 1 s.

Run with `python benchmarks/control_load.py [--probes N]`.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from plba import create_runtime, hookimpl
from plba.contracts import WorkerHealth

GOAL = 1.0


class HangingCheck:
    """A plugin whose critical health check hangs while `hang` is set."""

    name = "hanging"

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.released = threading.Event()

    @hookimpl
    def register_health(self, registry: Any) -> None:
        """Add the check."""
        registry.add_health("db", self.check, critical=True)

    def check(self) -> WorkerHealth:
        """Hang while asked to (until released), else ok."""
        if self.hang.is_set():
            self.released.wait(60)
        return WorkerHealth("ok")


def probe(port: int, path: str) -> tuple[float, int]:
    """Seconds for a fresh connection to get its answer to `GET path`, and the status (0 when none)."""
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        connection.close()
        status = response.status
    except OSError:
        status = 0
    return time.perf_counter() - started, status


def measure(port: int, probes: int) -> dict[str, list[tuple[float, int]]]:
    """`probes` timed probes of each endpoint, a little apart."""
    results: dict[str, list[tuple[float, int]]] = {"/health/live": [], "/health/ready": []}
    for _ in range(probes):
        for path, readings in results.items():
            readings.append(probe(port, path))
        time.sleep(0.05)
    return results


@contextmanager
def idle_clients(port: int, count: int = 400) -> Iterator[None]:
    """Connections opened and left silent."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(sock)
    yield
    for sock in sockets:
        sock.close()


@contextmanager
def slow_clients(port: int, count: int = 300) -> Iterator[None]:
    """Connections sending a request line one byte every half second."""
    stop = threading.Event()
    line = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000

    def trickle() -> None:
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
        sent = 0
        while not stop.wait(0.5):
            for index, sock in enumerate(sockets):
                try:
                    sock.send(line[sent % len(line):][:1])
                except OSError:  # closed by the server: come back as a new slow client
                    sockets[index] = socket.create_connection(("127.0.0.1", port), timeout=10)
            sent += 1
        for sock in sockets:
            sock.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    time.sleep(1.0)
    yield
    stop.set()
    thread.join()


@contextmanager
def flooding_clients(port: int, count: int = 8) -> Iterator[None]:
    """Threads sending `GET /status` back to back on keep-alive connections."""
    stop = threading.Event()

    def flood() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            try:
                connection.request("GET", "/status")
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    yield
    stop.set()
    for thread in threads:
        thread.join()


def hanging_check(plugin: HangingCheck, port: int, pending: int = 20) -> Callable[[], Any]:
    """Make the check hang and leave `pending` `GET /health` waiting; returns the context manager."""

    @contextmanager
    def scenario() -> Iterator[None]:
        plugin.hang.set()
        # Past the health cache, so the next evaluation runs the hanging check.
        time.sleep(1.2)
        threads = [threading.Thread(target=probe, args=(port, "/health"), daemon=True) for _ in range(pending)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        yield
        plugin.released.set()
        plugin.hang.clear()
        for thread in threads:
            thread.join()

    return scenario


def report(name: str, results: dict[str, list[tuple[float, int]]], reference: float) -> float:
    """Print one scenario's figures; returns its slowest probe."""
    worst = 0.0
    for path, readings in results.items():
        times = [seconds for seconds, _ in readings]
        answered = sum(1 for _, status in readings if status in (200, 503))
        worst = max(worst, max(times))
        median = statistics.median(times) * 1000
        print(f"{name:14} {path:14} answered {answered}/{len(readings)}  median {median:7.1f} ms"
              f"  max {max(times) * 1000:7.1f} ms  (max / idle median: {max(times) / reference:6.1f})")
    return worst


def main() -> None:
    """Run every scenario and print the probe latencies."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=10, help="Probes of each endpoint per scenario.")
    args = parser.parse_args()
    logging.getLogger("waitress").setLevel(logging.CRITICAL)
    plugin = HangingCheck()
    runtime = create_runtime(plugin, settings={"platform": {"control": {"port": 0}, "tracing": {"transport": "noop"}},
                                               "log": {"level": "ERROR"}})
    runtime.start()
    port = runtime.control.port
    try:
        quiet = measure(port, args.probes)
        reference = statistics.median(seconds for readings in quiet.values() for seconds, _ in readings)
        worst = report("quiet", quiet, reference)
        scenarios = {"idle x400": lambda: idle_clients(port), "slow x300": lambda: slow_clients(port),
                     "flood x8": lambda: flooding_clients(port), "hanging check": hanging_check(plugin, port)}
        for name, scenario in scenarios.items():
            with scenario():
                worst = max(worst, report(name, measure(port, args.probes), reference))
    finally:
        plugin.released.set()
        runtime.close()
    print(f"slowest probe: {worst * 1000:.1f} ms (goal < {GOAL * 1000:.0f} ms): {'met' if worst < GOAL else 'MISSED'}")


if __name__ == "__main__":
    main()
