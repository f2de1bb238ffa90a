"""Requeue of 10,000 dead tasks on Redis through the action layer, as a ratio to publishing 10,000 fresh tasks.

The queue-level figures are `benchmarks/queue_requeue.py`; this one goes through what an operator
uses: `POST /actions/queues/<name>/requeue` on a running runtime's control plane (authorization,
validation, the audit event in the platform database), once with `{"all": true}` and once with every
id in calls of 1,000 (the most one call takes; each checks its ids are dead before moving any).
The reference is `publish_many` of the same number of fresh tasks in the same run.

Run: `nox -s bench_action_requeue` or `python benchmarks/action_requeue.py [-n N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import urllib.request

from queue_requeue import fresh_queue, timed, with_dead_letters
from redis_throughput import ThrowawayRedis

from plba import Task, create_runtime, hookimpl

TOKEN = "bench-token"
BATCH = 1_000


class Queues:
    """A plugin that only asks for the benchmark's queue, so the control plane can act on it."""

    name = "bench"

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name

    @hookimpl
    def register_workers(self, registry: object) -> None:
        """Open the queue (no worker: the requeued tasks stay put)."""
        registry.queue(self.queue_name)  # type: ignore[attr-defined]


def post(url: str, body: dict) -> dict:
    """POST a JSON body with the token; the JSON answer."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read())


def one_round(url: str, n: int) -> dict[str, float]:
    """Seconds for publishing n fresh tasks, and for requeueing n dead ones through the control plane."""
    publisher = fresh_queue(url, n)
    tasks = [Task("bench", {"n": i, "note": "x" * 40}) for i in range(n)]
    seconds = {"publish": timed(lambda: publisher.publish_many(tasks))}
    publisher.close()
    for mode in ("all", "ids"):
        queue, ids = with_dead_letters(url, n)
        settings = {"platform": {"tracing": {"transport": "noop"}, "control": {"port": 0, "token": TOKEN},
                                 "queues": {queue.name: {"backend": "redis", "url": url, "dead_max": n}}}}
        runtime = create_runtime(Queues(queue.name), settings=settings).start()
        endpoint = f"{runtime.control.url}/actions/queues/{queue.name}/requeue"
        try:
            if mode == "all":
                seconds["http_all"] = timed(lambda e=endpoint: post(e, {"all": True}))
            else:
                batches = [ids[i:i + BATCH] for i in range(0, n, BATCH)]
                seconds["http_ids"] = timed(lambda e=endpoint, b=batches: [post(e, {"ids": ids}) for ids in b])
            assert queue.stats()["dead"] == 0 and queue.stats()["depth"] == n
        finally:
            runtime.close()
            queue.close()
    return seconds


def main() -> None:
    """Run the rounds in a scratch directory (the audit log's database goes there) and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="dead tasks to requeue (default 10,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, ThrowawayRedis() as server:
        os.chdir(scratch)
        rounds = [one_round(server.url, args.n) for _ in range(args.rounds)]
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"{args.n} tasks, median of {args.rounds} rounds on one redis-server")
    print(f"  publish_many (reference)            {median['publish'] * 1000:8.1f} ms")
    labels = {"http_all": 'POST requeue {"all": true}', "http_ids": f"POST requeue ids x{args.n // BATCH}"}
    for key, label in labels.items():
        print(f"  {label:<35} {median[key] * 1000:8.1f} ms   ratio to publishing {median[key] / median['publish']:.2f}")


if __name__ == "__main__":
    main()
