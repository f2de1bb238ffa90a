"""End-to-end throughput of RedisTaskQueue + QueueWorker against a bare redis-py loop, Dramatiq and RQ.

Each contender publishes N no-op tasks (Dramatiq and RQ at most 2,000) and consumes and
acknowledges all of them, timed from the first publish to the last ack, against one throwaway
redis-server started by this script (emptied between contenders).

Run: `python benchmarks/redis_throughput.py [--quick] [-n N]`. Needs redis-server on PATH; Dramatiq
and RQ are measured when installed (`pip install "dramatiq[redis]" rq`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import redis

from plba import QueueWorker
from plba.contracts import Task
from plba.queue.redis import RedisTaskQueue

CONCURRENCY = 4
# Dramatiq and RQ make several round trips per task; more tasks than this only make the run long.
SLOW_CONTENDER_TASKS = 2_000
FAST = ("plba", "plba-p20", "bare")


class ThrowawayRedis:
    """redis-server on a free loopback port, without persistence, stopped on exit."""

    def __enter__(self) -> ThrowawayRedis:
        executable = shutil.which("redis-server")
        if executable is None:
            sys.exit("redis-server is not installed (apt-get install redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    sys.exit("redis-server did not start")
                time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(10)


class Countdown:
    """A handler's counter that wakes the timer after the n-th call, so timing does not poll."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.lock = threading.Lock()
        self.done = threading.Event()

    def __call__(self, *args: object) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()

    def wait(self, what: str, timeout: float = 600.0) -> None:
        """Wait for the last call; give up loudly after `timeout`."""
        if not self.done.wait(timeout):
            raise RuntimeError(f"timed out waiting for {what}")


def bench_plba(url: str, n: int, prefetch: int) -> float:
    """RedisTaskQueue.publish_many, then QueueWorker with CONCURRENCY threads and a no-op handler."""
    queue = RedisTaskQueue("bench", url, prefetch=prefetch)
    countdown = Countdown(n)
    worker = QueueWorker("bench", queue, countdown, concurrency=CONCURRENCY)
    tasks = [Task("noop", {"i": i}) for i in range(n)]
    started = time.perf_counter()
    queue.publish_many(tasks)
    worker.start()
    countdown.wait("plba to process every task")
    queue.stats()  # sends the last batched acks
    elapsed = time.perf_counter() - started
    worker.stop()
    worker.join(10)
    stats = queue.stats()
    queue.close()
    if stats["depth"] or stats["pending"]:
        raise RuntimeError(f"plba left work behind: {stats}")
    return elapsed


def bench_bare(url: str, n: int) -> float:
    """The floor of what Streams allow from Python: pipelined XADD, XREADGROUP COUNT 100, one XACK per batch."""
    client = redis.Redis.from_url(url)
    client.xgroup_create("bare", "g", id="0", mkstream=True)
    started = time.perf_counter()
    for start in range(0, n, 500):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 500, n)):
            pipe.xadd("bare", {"t": f'{{"id":"{i}","name":"noop","payload":{{"i":{i}}},"metadata":{{}}}}'})
        pipe.execute()
    done = 0
    while done < n:
        reply = client.xreadgroup("g", "c", {"bare": ">"}, count=100, block=1000)
        ids = [entry for entry, _ in reply[0][1]]
        client.xack("bare", "g", *ids)
        done += len(ids)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def bench_dramatiq(url: str, n: int) -> float:
    """Dramatiq's RedisBroker with its default middleware and a Worker with CONCURRENCY threads."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    countdown = Countdown(n)

    @dramatiq.actor(broker=broker, max_retries=0)
    def noop(i: int) -> None:
        countdown(i)

    worker = dramatiq.Worker(broker, worker_threads=CONCURRENCY)
    started = time.perf_counter()
    for i in range(n):
        noop.send(i)
    worker.start()
    countdown.wait("Dramatiq to process every message")
    elapsed = time.perf_counter() - started
    worker.stop()
    broker.close()
    return elapsed


def rq_noop(i: int) -> None:
    """The RQ job: nothing."""


def bench_rq(url: str, n: int) -> float:
    """RQ: enqueue_many in one pipeline, then one in-process SimpleWorker in burst mode (RQ has no threads)."""
    from rq import Queue, SimpleWorker

    connection = redis.Redis.from_url(url)
    queue = Queue("bench", connection=connection)
    started = time.perf_counter()
    for start in range(0, n, 500):
        jobs = [Queue.prepare_data(rq_noop, args=(i,)) for i in range(start, min(start + 500, n))]
        queue.enqueue_many(jobs)
    SimpleWorker([queue], connection=connection).work(burst=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    finished = queue.finished_job_registry.count
    connection.close()
    if finished != n:
        raise RuntimeError(f"RQ finished {finished} of {n} jobs")
    return elapsed


CONTENDERS: list[tuple[str, str, Callable[[str, int], float]]] = [
    ("plba", f"RedisTaskQueue + QueueWorker, {CONCURRENCY} threads, prefetch 100 (the bare loop's COUNT)",
     functools.partial(bench_plba, prefetch=100)),
    ("plba-p20", "the same with the default prefetch 20", functools.partial(bench_plba, prefetch=20)),
    ("bare", "redis-py loop: pipelined XADD, XREADGROUP COUNT 100, XACK per batch", bench_bare),
    ("dramatiq", f"Dramatiq RedisBroker, {CONCURRENCY} worker threads", bench_dramatiq),
    ("rq", "RQ SimpleWorker, burst, 1 process", bench_rq),
]


def main() -> None:
    """Run every contender once against the same server and print tasks per second and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--tasks", type=int, default=20_000, help="tasks per contender")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks per contender")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of plba and the bare loop; the best counts")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.tasks
    logging.basicConfig(level=logging.WARNING)

    rates: dict[str, float] = {}
    tasks: dict[str, int] = {}
    with ThrowawayRedis() as server:
        # The goals are set by plba and the bare loop: they run a few interleaved rounds and the best
        # round counts, so a noisy moment on the machine does not decide a ratio. The slow
        # contenders run once.
        for round_number in range(args.rounds):
            for key, _, bench in CONTENDERS:
                if round_number and key not in FAST:
                    continue
                server.client.flushall()
                tasks[key] = n if key in FAST else min(n, SLOW_CONTENDER_TASKS)
                try:
                    rates[key] = max(rates.get(key, 0.0), tasks[key] / bench(server.url, tasks[key]))
                except ImportError as exc:
                    print(f"skipping {key}: {exc} (pip install 'dramatiq[redis]' rq)", file=sys.stderr)

    print("\nno-op tasks, end to end (publish, consume, ack), one redis-server on loopback\n")
    print(f"{'contender':<10} {'tasks':>7} {'tasks/s':>10} {'plba / it':>10}  what")
    for key, what, _ in CONTENDERS:
        if key in rates:
            print(f"{key:<10} {tasks[key]:>7} {rates[key]:>10,.0f} {rates['plba'] / rates[key]:>10.2f}  {what}")
    goals = [("bare", 0.5, ">= 0.5 x the bare loop"), ("dramatiq", 1.0, "faster than Dramatiq")]
    print()
    for mine in ("plba", "plba-p20"):
        for key, floor, label in goals:
            if key in rates:
                verdict = "met" if rates[mine] / rates[key] >= floor else "NOT met"
                print(f"goal {mine} {label}: {verdict} ({rates[mine] / rates[key]:.2f})")


if __name__ == "__main__":
    main()
