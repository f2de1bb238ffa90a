"""End-to-end throughput of PostgresTaskQueue + QueueWorker against a bare psycopg loop, procrastinate and PgQueuer.

Each contender publishes N no-op tasks in batches and consumes and acknowledges all of them with
4 workers, timed from the first publish to the last acknowledgement, each in a fresh database of
one throwaway PostgreSQL cluster started by this script:

- plba: `PostgresTaskQueue.publish_many`, then `QueueWorker` with 4 threads, prefetch 100 (the
  bare loop's batch) and the default 20;
- bare: the floor of a SKIP LOCKED queue from Python: 4 threads, each with its own connection,
  lease 100 rows with `SELECT ... FOR UPDATE SKIP LOCKED`, delete them, commit;
- procrastinate: `batch_defer` of an async no-op task, `run_worker_async(concurrency=4, wait=False)`;
- pgqueuer: `Queries.enqueue` in batches, `QueueManager.run(mode=drain)` with an async no-op
  entrypoint (its jobs run concurrently on one event loop).

Run: `python benchmarks/postgres_throughput.py [--quick] [-n N] [--fsync]`. Needs the PostgreSQL
server binaries; procrastinate and PgQueuer are measured when installed (`nox -s bench_postgres`
installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from plba import QueueWorker  # noqa: E402
from plba.contracts import Task  # noqa: E402
from plba.queue.postgres import PostgresTaskQueue  # noqa: E402
from tests.postgres.server import PostgresServer  # noqa: E402

# The same handler counter as the Redis benchmark beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from redis_throughput import Countdown  # noqa: E402

CONCURRENCY = 4
PUBLISH_BATCH = 500
BARE_BATCH = 100
FAST = ("plba", "plba-p20", "bare")


def bench_plba(url: str, n: int, prefetch: int) -> float:
    """PostgresTaskQueue.publish_many, then QueueWorker with CONCURRENCY threads and a no-op handler."""
    queue = PostgresTaskQueue("bench", url, prefetch=prefetch)
    countdown = Countdown(n)
    worker = QueueWorker("bench", queue, countdown, concurrency=CONCURRENCY, prefetch=prefetch)
    tasks = [Task("noop", {"i": i}) for i in range(n)]
    started = time.perf_counter()
    for start in range(0, n, PUBLISH_BATCH):
        queue.publish_many(tasks[start:start + PUBLISH_BATCH])
    worker.start()
    countdown.wait("plba to process every task")
    # The last batch's handler returned; its ack follows in the same thread.
    while queue.stats()["in_flight"]:
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    worker.stop()
    worker.join(10)
    stats = queue.stats()
    queue.close()
    if stats["depth"] or stats["in_flight"]:
        raise RuntimeError(f"plba left work behind: {stats}")
    return elapsed


def bench_bare(url: str, n: int) -> float:
    """4 threads, each: SELECT 100 rows FOR UPDATE SKIP LOCKED, handle, DELETE them, COMMIT; until none is left."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bare (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body jsonb NOT NULL)")
    countdown = Countdown(n)

    def consume() -> None:
        with psycopg.connect(url) as conn:
            while not countdown.done.is_set():
                with conn.transaction():
                    rows = conn.execute("SELECT id, body FROM bare ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                                        [BARE_BATCH]).fetchall()
                    for _, body in rows:
                        countdown(body)
                    if rows:
                        conn.execute("DELETE FROM bare WHERE id = ANY(%s)", [[row[0] for row in rows]])
                if not rows:
                    time.sleep(0.001)

    bodies = [f'{{"id":"{i}","name":"noop","payload":{{"i":{i}}},"metadata":{{}}}}' for i in range(n)]
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, n, PUBLISH_BATCH):
            conn.execute("INSERT INTO bare (body) SELECT b::jsonb FROM unnest(%s::text[]) AS b",
                         [bodies[start:start + PUBLISH_BATCH]])
    threads = [threading.Thread(target=consume) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def bench_procrastinate(url: str, n: int) -> float:
    """procrastinate: batch_defer of an async no-op task, then a worker with concurrency 4 until none is left."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    countdown = Countdown(n)

    @app.task(name="noop")
    async def noop(i: int) -> None:
        countdown(i)

    async def run() -> float:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            started = time.perf_counter()
            for start in range(0, n, PUBLISH_BATCH):
                await noop.batch_defer_async(*({"i": i} for i in range(start, min(start + PUBLISH_BATCH, n))))
            await app.run_worker_async(concurrency=CONCURRENCY, wait=False, delete_jobs="always",
                                       install_signal_handlers=False)
            return time.perf_counter() - started

    elapsed = asyncio.run(run())
    if countdown.left:
        raise RuntimeError(f"procrastinate left {countdown.left} of {n} jobs")
    return elapsed


def bench_pgqueuer(url: str, n: int) -> float:
    """PgQueuer: Queries.enqueue in batches, then QueueManager.run(mode=drain) with an async no-op entrypoint."""
    from pgqueuer import PgQueuer
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.domain.types import QueueExecutionMode
    from pgqueuer.queries import Queries

    countdown = Countdown(n)

    async def run() -> float:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            driver = PsycopgDriver(conn)
            queries = Queries(driver)
            await queries.install()
            pgq = PgQueuer(driver)

            @pgq.entrypoint("noop")
            async def noop(job: object) -> None:
                countdown(job)

            started = time.perf_counter()
            for start in range(0, n, PUBLISH_BATCH):
                size = min(PUBLISH_BATCH, n - start)
                await queries.enqueue(["noop"] * size, [b"%d" % i for i in range(start, start + size)], [0] * size)
            await pgq.qm.run(mode=QueueExecutionMode.drain, batch_size=20,
                             dequeue_timeout=timedelta(seconds=1))
            return time.perf_counter() - started

    elapsed = asyncio.run(run())
    if countdown.left:
        raise RuntimeError(f"PgQueuer left {countdown.left} of {n} jobs")
    return elapsed


CONTENDERS: list[tuple[str, str, Callable[[str, int], float]]] = [
    ("plba", f"PostgresTaskQueue + QueueWorker, {CONCURRENCY} threads, prefetch 100 (the bare loop's batch)",
     functools.partial(bench_plba, prefetch=100)),
    ("plba-p20", "the same with the default prefetch 20", functools.partial(bench_plba, prefetch=20)),
    ("bare", f"psycopg, {CONCURRENCY} threads: SKIP LOCKED {BARE_BATCH} rows, DELETE, COMMIT", bench_bare),
    ("procrastinate", f"procrastinate worker, concurrency {CONCURRENCY}, async no-op task", bench_procrastinate),
    ("pgqueuer", "PgQueuer QueueManager, drain mode, batch 20, async no-op entrypoint", bench_pgqueuer),
]


def main() -> None:
    """Run every contender against the same cluster, each in its own database; print tasks per second and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--tasks", type=int, default=10_000, help="tasks per contender")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks per contender")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of plba and the bare loop; the best counts")
    parser.add_argument("--fsync", action="store_true", help="a durable server (fsync and synchronous commit on)")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.tasks
    logging.basicConfig(level=logging.WARNING)

    rates: dict[str, float] = {}
    server = PostgresServer(fsync=args.fsync).start()
    try:
        # plba and the bare loop set the goal ratio: they run a few interleaved rounds and the best
        # round counts, so a noisy moment on the machine does not decide it. The others run once.
        for round_number in range(args.rounds):
            for key, _, bench in CONTENDERS:
                if round_number and key not in FAST:
                    continue
                database = f"bench_{key}_{uuid.uuid4().hex[:6]}"
                url = server.create_database(database)
                try:
                    rates[key] = max(rates.get(key, 0.0), n / bench(url, n))
                except ImportError as exc:
                    print(f"skipping {key}: {exc} (pip install procrastinate pgqueuer)", file=sys.stderr)
                finally:
                    server.drop_database(database)
    finally:
        server.remove()

    durability = "fsync on" if args.fsync else "fsync off"
    print(f"\n{n} no-op tasks, end to end (publish, consume, ack), one PostgreSQL on loopback, {durability}\n")
    print(f"{'contender':<14} {'tasks/s':>10} {'plba / it':>10}  what")
    for key, what, _ in CONTENDERS:
        if key in rates:
            print(f"{key:<14} {rates[key]:>10,.0f} {rates['plba'] / rates[key]:>10.2f}  {what}")
    print()
    goals = [("bare", 0.5, ">= 0.5 x the bare loop"), ("procrastinate", 1.0, "faster than procrastinate"),
             ("pgqueuer", 1.0, "faster than PgQueuer")]
    for mine in ("plba", "plba-p20"):
        for key, floor, label in goals:
            if key in rates:
                verdict = "met" if rates[mine] / rates[key] >= floor else "NOT met"
                print(f"goal {mine} {label}: {verdict} ({rates[mine] / rates[key]:.2f})")


if __name__ == "__main__":
    main()
