"""Requeue of 10,000 dead tasks on Redis, timed as a ratio to publishing 10,000 fresh tasks in the same run.

Each round makes its own queues on one throwaway redis-server: it times `publish_many` of N fresh
tasks (the reference, one Lua call per 500 tasks), then fills another queue's dead letters with N
tasks through the real path (consume, dead_letter) and times `requeue_all()`, then the same for
`requeue(ids)` with every id. The median of the rounds is printed with its ratio to the reference
(1.0 means as fast as publishing; lower is faster).

Run: `nox -s bench_requeue` or `python benchmarks/queue_requeue.py [-n N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from redis_throughput import ThrowawayRedis

from plba.contracts import Task
from plba.queue.redis import RedisTaskQueue


def fresh_queue(url: str, n: int) -> RedisTaskQueue:
    """A queue of its own, leasing in big batches so that filling its dead letters is quick."""
    return RedisTaskQueue(f"bench-{uuid.uuid4().hex[:8]}", url, prefetch=500, dead_max=max(n, 10_000))


def with_dead_letters(url: str, n: int) -> tuple[RedisTaskQueue, list[str]]:
    """A queue holding `n` dead letters (and nothing else), and their ids."""
    queue = fresh_queue(url, n)
    queue.publish_many(Task("bench", {"n": i, "note": "x" * 40}) for i in range(n))
    ids = []
    while len(ids) < n:
        task = queue.consume(timeout=10)
        assert task is not None, f"only {len(ids)} of {n} tasks were delivered"
        queue.dead_letter(task, "RuntimeError: benchmark")
        ids.append(task.id)
    assert queue.stats()["dead"] == n
    return queue, ids


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def one_round(url: str, n: int) -> dict[str, float]:
    """Seconds for publishing n fresh tasks, requeueing n dead ones all at once, and by their ids."""
    publisher = fresh_queue(url, n)
    tasks = [Task("bench", {"n": i, "note": "x" * 40}) for i in range(n)]
    seconds = {"publish": timed(lambda: publisher.publish_many(tasks))}
    publisher.close()

    queue, _ = with_dead_letters(url, n)
    seconds["requeue_all"] = timed(lambda: _check(queue.requeue_all().moved, n))
    assert queue.stats()["dead"] == 0 and queue.stats()["depth"] == n
    queue.close()

    queue, ids = with_dead_letters(url, n)
    seconds["requeue_ids"] = timed(lambda: _check(queue.requeue(ids).moved, n))
    queue.close()
    return seconds


def _check(moved: int, n: int) -> None:
    assert moved == n, f"moved {moved} of {n}"


def main() -> None:
    """Run the rounds and print the medians and the ratios to publishing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="dead tasks to requeue (default 10,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported (default 5)")
    args = parser.parse_args()
    with ThrowawayRedis() as server:
        rounds = [one_round(server.url, args.n) for _ in range(args.rounds)]
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"{args.n} tasks, median of {args.rounds} rounds on one redis-server")
    print(f"  publish_many (reference)  {median['publish'] * 1000:8.1f} ms")
    for key in ("requeue_all", "requeue_ids"):
        print(f"  {key:<25} {median[key] * 1000:8.1f} ms   ratio to publishing {median[key] / median['publish']:.2f}")


if __name__ == "__main__":
    main()
