"""In-memory pipeline throughput: PLBA's queue + QueueWorker(4) against bare queue.Queue + 4 threads.

Run with `nox -s bench_pipeline` (or `python benchmarks/pipeline.py [--tasks N] [--rounds N]`).
Variants: PLBA untraced, traced with the default `log` transport (logging configured at INFO as
`plba run` does, so spans are not formatted), and traced with the `jsonl` transport. Every round runs
every variant once, in a rotated order, after a warm-up round; each ratio is the median over the
rounds of the variant's rate divided by the bare rate of the same round, so machine load that
comes and goes weighs on the reference and the subject alike.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from plba import QueueWorker, Task
from plba.logs import configure_logging
from plba.queue import InMemoryTaskQueue
from plba.tracing import JsonlTraceTransport, LogTraceTransport, TraceService

WORKERS = 4
BARE = "bare queue.Queue + 4 threads"


def bare(tasks: int) -> float:
    """Seconds for 4 threads to drain `tasks` items from a plain queue.Queue."""
    work: queue.Queue = queue.Queue()
    for n in range(tasks):
        work.put(n)
    done = threading.Event()
    remaining = [tasks]
    lock = threading.Lock()

    def consume() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            work.task_done()
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

    started = time.perf_counter()
    threads = [threading.Thread(target=consume) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    done.wait()
    elapsed = time.perf_counter() - started
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    return elapsed


def plba_pipeline(tasks: int, traces: TraceService | None = None) -> float:
    """Seconds for a QueueWorker with 4 threads to handle `tasks` no-op tasks (published in one trace)."""
    task_queue = InMemoryTaskQueue(maxsize=0)
    if traces is not None:
        with traces.trace("benchmark"):
            for n in range(tasks):
                task_queue.publish(Task("noop", n))
    else:
        for n in range(tasks):
            task_queue.publish(Task("noop", n))
    worker = QueueWorker("bench", task_queue, lambda task: None, traces, concurrency=WORKERS)
    started = time.perf_counter()
    worker.start()
    task_queue.wait_empty(600)
    elapsed = time.perf_counter() - started
    worker.stop()
    worker.join(10)
    return elapsed


def measure(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Seconds per variant and round: a warm-up round first, then every variant once a round, order rotated."""
    names = list(variants)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(-1, rounds):
        shift = max(round_number, 0) % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()  # the previous run's garbage is not this run's work
            elapsed = variants[name]()
            if round_number >= 0:
                timings[name].append(elapsed)
    return timings


def main() -> None:
    """Measure every variant and print its median rate and its ratio to the bare reference."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    # As `plba run` leaves it with the default settings: INFO, trace ids on every record.
    configure_logging("INFO", "plain", stream=io.StringIO())
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = TraceService(JsonlTraceTransport(Path(tmp) / "traces.jsonl"))
        default = TraceService(LogTraceTransport())
        variants = {
            BARE: lambda: bare(args.tasks),
            "plba InMemoryTaskQueue + QueueWorker(4)": lambda: plba_pipeline(args.tasks),
            "  ... traced, log transport (default)": lambda: plba_pipeline(args.tasks, default),
            "  ... traced, jsonl transport": lambda: plba_pipeline(args.tasks, jsonl),
        }
        timings = measure(variants, args.rounds)
        jsonl.close()
    print(f"{args.tasks} no-op tasks, {WORKERS} workers, {args.rounds} interleaved rounds after a warm-up, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'variant':45} {'tasks/s':>10} {'ratio':>7}   ratio per round")
    for name, seconds in timings.items():
        rate = args.tasks / statistics.median(seconds)
        ratios = [reference / elapsed for reference, elapsed in zip(timings[BARE], seconds, strict=True)]
        spread = " ".join(f"{ratio:.2f}" for ratio in ratios)
        print(f"{name:45} {rate:10.0f} {statistics.median(ratios):7.2f}   {spread}")


if __name__ == "__main__":
    main()
