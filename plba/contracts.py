"""The contracts between the runtime and application code: tasks, queues, handlers, workers."""

from __future__ import annotations

import abc
import enum
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Settings(Protocol):
    """The merged configuration as plugins see it: a Dynaconf object or one with the same reading interface."""

    validators: Any  # dynaconf's ValidatorList: `settings.validators.register(Validator(...), ...)`

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted key (`"section.key"`), or `default`."""


class WorkerState(enum.StrEnum):
    """What a worker is doing right now."""

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class HealthStatus(enum.StrEnum):
    """Whether a component can do its job."""

    OK = "ok"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass
class WorkerHealth:
    """A health reading: `ok`, `degraded` or `unhealthy`, with a detail for people."""

    status: HealthStatus
    detail: str = ""

    def __post_init__(self) -> None:
        self.status = HealthStatus(self.status)

    def to_dict(self) -> dict[str, Any]:
        """The reading as JSON-ready data."""
        return {"status": self.status.value, "detail": self.detail}


@dataclass
class WorkerStatus:
    """A status reading: the state plus counters and the last error."""

    state: WorkerState
    in_flight: int = 0
    processed: int = 0
    failed: int = 0
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.state = WorkerState(self.state)

    def to_dict(self) -> dict[str, Any]:
        """The reading as JSON-ready data."""
        return {
            "state": self.state.value,
            "in_flight": self.in_flight,
            "processed": self.processed,
            "failed": self.failed,
            "last_error": self.last_error,
        }


def _new_task_id() -> str:
    # 128 random bits like uuid4, without its per-call os.urandom cost (the random module
    # reseeds itself in forked children, so ids do not repeat across processes).
    return f"{random.getrandbits(128):032x}"


@dataclass
class Task:
    """One unit of work: a name, a JSON-serialisable payload and metadata (trace context, attempts)."""

    name: str
    payload: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=_new_task_id)

    @property
    def attempts(self) -> int:
        """How many times delivery of this task has been attempted so far."""
        return int(self.metadata.get("attempts", 0))

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON-ready data, as queues store it."""
        return {"id": self.id, "name": self.name, "payload": self.payload, "metadata": self.metadata}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        """Rebuild a task from `to_dict` output."""
        return cls(name=data["name"], payload=data["payload"], metadata=dict(data.get("metadata") or {}), id=data["id"])


class TaskHandler(abc.ABC):
    """Business logic for one task; raising means the task failed."""

    @abc.abstractmethod
    def handle(self, task: Task) -> None:
        """Process one task."""


class TaskQueue(abc.ABC):
    """A queue of tasks with leases: consume, then ack on success or nack to retry."""

    @abc.abstractmethod
    def publish(self, task: Task) -> None:
        """Add a task; a current trace context is stored in its metadata."""

    @abc.abstractmethod
    def consume(self, timeout: float | None = None) -> Task | None:
        """Lease the next task, waiting up to `timeout` seconds; None when nothing came."""

    @abc.abstractmethod
    def ack(self, task: Task) -> None:
        """Mark a leased task done; it is never delivered again."""

    @abc.abstractmethod
    def nack(self, task: Task, retry_delay: float | None = None) -> None:
        """Give a leased task back, visible again after `retry_delay` seconds."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counters such as depth, in_flight, delayed and dead."""

    def consume_many(self, max_count: int, timeout: float | None = None) -> list[Task]:
        """Lease up to `max_count` tasks; backends that can batch override this to save round trips."""
        task = self.consume(timeout)
        return [] if task is None else [task]

    def ack_many(self, tasks: Iterable[Task]) -> None:
        """Acknowledge several tasks; backends that can batch override this."""
        for task in tasks:
            self.ack(task)

    def dead_letter(self, task: Task, error: str) -> None:
        """Move a leased task to the dead-letter store with its error; by default, just drop the lease."""
        task.metadata["error"] = error
        self.ack(task)

    def release(self, task: Task) -> None:
        """Give back a leased task that was never started, without counting an attempt."""
        self.nack(task)

    def interrupt(self) -> None:
        """Wake consumers blocked in `consume` so they return None at once (used when stopping)."""

    def close(self) -> None:
        """Free connections and threads; the default has none."""


class Worker(abc.ABC):
    """A runtime-managed active component: it owns its threads and reports health and status."""

    name: str = "worker"
    critical: bool = True

    @abc.abstractmethod
    def start(self) -> None:
        """Start the worker's threads and return."""

    @abc.abstractmethod
    def stop(self, force: bool = False) -> None:
        """Ask the worker to stop; return promptly. `force` abandons in-flight work."""

    @abc.abstractmethod
    def health(self) -> WorkerHealth:
        """The worker's health reading."""

    @abc.abstractmethod
    def status(self) -> WorkerStatus:
        """The worker's status reading."""

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` for the worker's threads to end; True when they all have."""
        return True

    def close(self) -> None:
        """Free connections once the worker has stopped for good (the runtime closes); nothing by default."""
