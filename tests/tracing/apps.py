"""Plugins for the tracing tests: a producer that opens a trace per task, and a handler that logs."""

from __future__ import annotations

import logging
import threading

from plba import ApplicationModule, QueueWorker, Task
from plba.contracts import Worker, WorkerHealth, WorkerState, WorkerStatus

log = logging.getLogger("acme.jobs")


class Producer(Worker):
    """Discovers `count` jobs in its own thread and publishes one task per job, each in a new trace."""

    def __init__(self, queue, traces, count: int) -> None:
        self.name = "producer"
        self.queue = queue
        self.traces = traces
        self.count = count
        self.done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Publish the jobs from a thread."""
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i in range(self.count):
            with self.traces.trace("job.discovered", n=i):
                log.info("discovered job %d", i)
                self.traces.message("job queued", n=i)
                self.queue.publish(Task("job", {"n": i}))
        self.done.set()

    def stop(self, force: bool = False) -> None:
        """Nothing to interrupt: the producer ends by itself."""

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def health(self) -> WorkerHealth:
        """Always ok."""
        return WorkerHealth("ok")

    def status(self) -> WorkerStatus:
        """Idle once every job is published."""
        return WorkerStatus(WorkerState.IDLE if self.done.is_set() else WorkerState.BUSY)


def handle(task: Task) -> None:
    """Business code: logs through standard logging, knows nothing of traces."""
    log.info("handled job %d", task.payload["n"])


class JobsApp(ApplicationModule):
    """A producer and a two-thread consumer on one in-memory queue."""

    name = "jobs"

    def __init__(self, count: int = 5) -> None:
        self.count = count
        self.handled: list[int] = []

    def register(self, registry) -> None:
        """Add the producer and the consumer."""
        traces = registry.services.get("traces")
        queue = registry.queue("jobs")
        registry.add_worker(Producer(queue, traces, self.count))
        registry.add_worker(QueueWorker("consumer", queue, self._handle, traces, concurrency=2, poll_timeout=0.05))

    def _handle(self, task: Task) -> None:
        handle(task)
        self.handled.append(task.payload["n"])  # list.append: atomic across the two threads
