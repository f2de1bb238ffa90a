"""In-memory pipeline throughput: PLBA's queue + QueueWorker(4) against bare queue.Queue + 4 threads.

Run with `nox -s bench_pipeline` (or `python benchmarks/pipeline.py [--tasks N]`). Prints tasks per
second for each variant and its ratio to the bare reference measured in the same run.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path

from plba import QueueWorker, Task
from plba.queue import InMemoryTaskQueue
from plba.tracing import JsonlTraceTransport, NoOpTraceTransport, TraceService

WORKERS = 4


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
    """Seconds for a QueueWorker with 4 threads to handle `tasks` no-op tasks."""
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


def interleaved_medians(variants: dict, rounds: int) -> dict[str, float]:
    """Median seconds per variant, running every variant once per round so drift hits all alike."""
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            timings[name].append(run())
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    """Measure every variant and print rates and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = TraceService(JsonlTraceTransport(Path(tmp) / "traces.jsonl"))
        noop = TraceService(NoOpTraceTransport())
        variants = {
            "bare queue.Queue + 4 threads": lambda: bare(args.tasks),
            "plba InMemoryTaskQueue + QueueWorker(4)": lambda: plba_pipeline(args.tasks),
            "  ... with tracing (noop transport)": lambda: plba_pipeline(args.tasks, noop),
            "  ... with tracing (jsonl transport)": lambda: plba_pipeline(args.tasks, jsonl),
        }
        seconds = interleaved_medians(variants, args.rounds)
    reference = args.tasks / seconds["bare queue.Queue + 4 threads"]
    print(f"{args.tasks} no-op tasks, {WORKERS} workers, median of {args.rounds} rounds")
    print(f"{'variant':45} {'tasks/s':>10} {'ratio':>7}")
    for name, elapsed in seconds.items():
        rate = args.tasks / elapsed
        print(f"{name:45} {rate:10.0f} {rate / reference:7.2f}")


if __name__ == "__main__":
    main()
