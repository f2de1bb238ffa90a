"""`GET /health` requests per second while 4 workers are busy, as a ratio to bare Flask on waitress, same run.

Both servers run in this process under the same load: a QueueWorker with concurrency 4 handling a
steady stream of tasks. The bare server is Flask on waitress (same thread count, same bind code)
returning the same JSON without looking at the runtime. A few client threads send a fixed number
of keep-alive requests over loopback to each, alternately, several rounds; the best round of each
counts.

Run with `python benchmarks/health_rps.py [--quick] [--handler sleep|cpu]`. Goal: ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import threading
import time
from typing import Any

from flask import Flask, Response

from plba import QueueWorker, Task, create_runtime, hookimpl
from plba.control.server import Limits, serve, shutdown

WORKERS = 4
# The feeder keeps about this many tasks queued, so the workers never run dry nor memory grows.
BACKLOG = 200


class BusyPlugin:
    """A queue `load` fed continuously and a 4-thread worker whose handler sleeps or computes ~1 ms."""

    name = "busy"

    def __init__(self, handler: str) -> None:
        self.handler = _sleep if handler == "sleep" else _compute
        self.queue: Any = None

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        """Add the loaded worker."""
        self.queue = registry.queue("load")
        registry.add_worker(QueueWorker("busy", self.queue, self.handler, concurrency=WORKERS, prefetch=1))


def _sleep(task: Task) -> None:
    time.sleep(0.001)


def _compute(task: Task) -> None:
    # About a millisecond of pure-Python work: holds the GIL like real parsing or pricing code.
    total = 0
    for n in range(20_000):
        total += n * n


def feed(queue: Any, stop: threading.Event) -> None:
    """Keep the queue topped up until `stop` is set."""
    while not stop.is_set():
        missing = BACKLOG - queue.stats()["depth"]
        for _ in range(max(0, missing)):
            queue.publish(Task("work", {}))
        stop.wait(0.005)


def bare_server(body: bytes, limits: Limits) -> tuple[Any, threading.Thread, int]:
    """Flask on waitress (the control plane's server and limits) answering `GET /health` with a fixed body."""
    app = Flask("bare")

    @app.get("/health")
    def health() -> Response:
        return Response(body, mimetype="application/json")

    server = serve(app, "127.0.0.1", 0, limits)
    thread = threading.Thread(target=server.run, name="bare-waitress", daemon=True)
    thread.start()
    return server, thread, server.socket.getsockname()[1]


def stop_bare(server: Any, thread: threading.Thread) -> None:
    """Stop the bare server the same way the control plane stops."""
    shutdown(server, thread)


def rps(port: int, clients: int, requests: int) -> float:
    """Requests per second of `clients` threads, each sending `requests` keep-alive GET /health."""
    errors: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests):
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors.append(str(response.status))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"GET /health failed: {errors[:3]}")
    return clients * requests / elapsed


def main() -> None:
    """Measure both servers under load and print the figures and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer requests and rounds (a smoke run).")
    parser.add_argument("--handler", choices=["sleep", "cpu"], default="sleep",
                        help="What the busy workers do per task: sleep 1 ms or compute ~1 ms.")
    parser.add_argument("--clients", type=int, default=4, help="Client threads.")
    args = parser.parse_args()
    requests, rounds = (200, 2) if args.quick else (1500, 5)
    # More clients than request threads is the point of the test, not news worth a warning per burst.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    plugin = BusyPlugin(args.handler)
    runtime = create_runtime(plugin, settings={"platform": {"control": {"port": 0},
                                                            "tracing": {"transport": "noop"}},
                                               "log": {"level": "WARNING"}})
    runtime.start()
    stop_feeding = threading.Event()
    feeder = threading.Thread(target=feed, args=(plugin.queue, stop_feeding), name="feeder", daemon=True)
    feeder.start()
    bare, bare_thread, bare_port = bare_server(json.dumps(runtime.health()).encode(), Limits.read(runtime.settings))
    try:
        rps(runtime.control.port, args.clients, requests // 4)
        rps(bare_port, args.clients, requests // 4)
        control_best = bare_best = 0.0
        for _ in range(rounds):
            control_best = max(control_best, rps(runtime.control.port, args.clients, requests))
            bare_best = max(bare_best, rps(bare_port, args.clients, requests))
        processed = runtime.status()["workers"][0]["processed"]
    finally:
        stop_feeding.set()
        stop_bare(bare, bare_thread)
        runtime.close()
    print(f"workers: {WORKERS} busy ({args.handler}), {processed} tasks handled during the run")
    print(f"bare Flask on waitress: {bare_best:8.0f} requests/s")
    print(f"plba GET /health:       {control_best:8.0f} requests/s")
    print(f"ratio: {control_best / bare_best:.2f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
