"""Server-side render time of the console's overview (4 busy workers) and dead-letter page (10,000 dead tasks).

Each page is rendered through Flask's test client by a logged-in operator, so the numbers are the
server's work alone (session, role check, reads, template), no network. The reference, measured in
the same run, is `GET /status` as JSON with a service token. Goals: overview median 50 ms,
dead-letter page median 100 ms.

Run: `nox -s bench_admin` or `python benchmarks/admin_render.py [--rounds R]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

from plba import QueueWorker, Task, create_runtime, hookimpl
from plba.db import open_database
from plba.users import Accounts

TOKEN = "bench-token"
PASSWORD = "bench password 123"
DEAD = 10_000


class Busy:
    """4 workers that are always busy on the `work` queue, and a `dead` queue holding 10,000 dead tasks."""

    name = "bench"

    def __init__(self) -> None:
        self.stop = threading.Event()

    def handle(self, task: Task) -> None:
        """Hold the task a little, as real work would."""
        time.sleep(0.002)
        self.work.publish(Task("work", {}))

    @hookimpl
    def register_workers(self, registry: object) -> None:
        """Queues and workers."""
        self.work = registry.queue("work")  # type: ignore[attr-defined]
        for _ in range(50):
            self.work.publish(Task("work", {}))
        for n in range(4):
            registry.add_worker(QueueWorker(f"busy-{n}", self.work, self.handle, poll_timeout=0.05))  # type: ignore[attr-defined]
        dead = registry.queue("dead")  # type: ignore[attr-defined]
        for n in range(DEAD):
            task = Task("job", {"n": n, "customer": f"c{n}@example.com"})
            dead.publish(task)
            leased = dead.consume(timeout=0)
            dead.dead_letter(leased, f"ValueError: bad order {n}")


def median_ms(call, rounds: int) -> float:
    """Median wall time of `call` in milliseconds."""
    call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    """Measure and print the medians and their ratios to the reference."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as home:
        os.chdir(home)
        Accounts(open_database("var/plba.sqlite")).users.add("operator", "operator", PASSWORD)
        settings = {"platform": {"control": {"port": 0, "token": TOKEN}, "admin": {"enabled": True},
                                 "tracing": {"transport": "noop"}, "queues": {"dead": {"dead_max": 0}}}}
        with create_runtime(Busy(), settings=settings) as runtime:
            client = runtime.control.app.test_client()
            page = client.get("/admin/login").get_data(as_text=True)
            token = page.split('name="csrf_token" value="')[1].split('"')[0]
            client.post("/admin/login", data={"username": "operator", "password": PASSWORD, "csrf_token": token})
            assert client.get("/admin/queues/dead").status_code == 200
            status = median_ms(lambda: client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"}), rounds)
            overview = median_ms(lambda: client.get("/admin/"), rounds)
            dead = median_ms(lambda: client.get("/admin/queues/dead"), rounds)
            busy = sum(1 for w in runtime.status()["workers"] if w["state"] == "busy")
    print(f"reference GET /status JSON:        {status:7.2f} ms median")
    print(f"overview, 4 busy workers ({busy} busy now): {overview:7.2f} ms median  "
          f"({overview / status:.1f}x /status; goal 50 ms)")
    print(f"dead letters, {DEAD:,} dead tasks:     {dead:7.2f} ms median  ({dead / status:.1f}x /status; goal 100 ms)")


if __name__ == "__main__":
    main()
