"""The contracts between the runtime and application code: tasks, queues, handlers, workers."""

from __future__ import annotations

import abc
import enum
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from plba.backoff import Backoff
from plba.errors import UnsupportedQueueOperation

# Deliveries of a task before it is dead-lettered, where neither the worker nor the queue says.
DEFAULT_MAX_ATTEMPTS = 5
# Dead letters a queue keeps by default; beyond it the oldest are dropped (with a warning).
DEFAULT_DEAD_MAX = 10_000
# What `TaskQueue.purge` can remove.
PURGEABLE = ("dead", "ready")


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


def trace_id_of(metadata: dict[str, Any]) -> str | None:
    """The trace id in a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), or None without one."""
    parts = str(metadata.get("traceparent") or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@dataclass(frozen=True)
class DeadTask:
    """A dead-lettered task as operators see it: who it was, how often it ran, why and when it died."""

    id: str
    name: str
    attempts: int
    error: str | None
    dead_at: datetime | None
    trace_id: str | None
    payload: Any
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_task(cls, task: Task, dead_at: float | None = None) -> DeadTask:
        """The record of `task`, dead-lettered at `dead_at` (epoch seconds; default its `dead_lettered_at`)."""
        metadata = task.metadata
        when = metadata.get("dead_lettered_at") if dead_at is None else dead_at
        return cls(
            id=task.id,
            name=task.name,
            attempts=task.attempts,
            error=metadata.get("error"),
            dead_at=None if when is None else datetime.fromtimestamp(float(when), UTC),
            trace_id=trace_id_of(metadata),
            payload=task.payload,
            metadata=dict(metadata),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record in the `GET /queues/<name>/dead` shape; `dead_at` as ISO 8601 UTC. Payload unmasked."""
        return {
            "id": self.id,
            "name": self.name,
            "attempts": self.attempts,
            "error": self.error,
            "dead_at": None if self.dead_at is None else self.dead_at.isoformat(),
            "trace_id": self.trace_id,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class DeadPage:
    """One page of dead letters, oldest first; pass `next_cursor` to `list_dead` for the next page."""

    tasks: list[DeadTask]
    next_cursor: str | None = None


@dataclass(frozen=True)
class RequeueResult:
    """What a requeue did: how many dead tasks moved back, and which asked-for ids were not dead."""

    moved: int
    unknown: list[str] = field(default_factory=list)


def reset_for_requeue(task: Task) -> Task:
    """`task` as it goes back from the dead letters: attempts reset, the death's error and time removed."""
    for key in ("error", "dead_lettered_at"):
        task.metadata.pop(key, None)
    task.metadata["attempts"] = 0
    return task


class TaskQueue(abc.ABC):
    """A queue of tasks with leases: consume, then ack on success or nack to retry.

    Beyond the five abstract methods, a backend may offer the optional capabilities below; each
    has a default, so callers never probe for them. Operations a backend cannot do (requeue,
    purge, pause, listing dead letters) raise `UnsupportedQueueOperation` by default.
    """

    # The retry policy a QueueWorker on this queue follows unless it is given its own;
    # None leaves the worker's defaults (DEFAULT_MAX_ATTEMPTS, Backoff()).
    max_attempts: int | None = None
    retry_backoff: Backoff | None = None

    @abc.abstractmethod
    def publish(self, task: Task) -> None:
        """Add a task; a current trace context is stored in its metadata."""

    @abc.abstractmethod
    def consume(self, timeout: float | None = None) -> Task | None:
        """Lease the next task, waiting up to `timeout` seconds; None when nothing came (or while paused)."""

    @abc.abstractmethod
    def ack(self, task: Task) -> None:
        """Mark a leased task done; it is never delivered again."""

    @abc.abstractmethod
    def nack(self, task: Task, retry_delay: float | None = None) -> None:
        """Give a leased task back, visible again after `retry_delay` seconds."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counters: at least `backend`, `depth`, `in_flight`, `delayed`, `dead` and `paused`."""

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

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` until no task is held by this process alone; True when none is.

        Only queues whose tasks die with the process (in memory) need to wait; the default,
        for queues kept by a server, returns True at once.
        """
        return True

    def close(self) -> None:
        """Free connections and threads; the default has none."""

    # -- operating: dead letters and controls -----------------------------------------------

    def list_dead(self, limit: int = 100, cursor: str | None = None) -> DeadPage:
        """Up to `limit` dead letters, oldest first, starting after `cursor` (a page's `next_cursor`).

        Raises ValueError for a limit below 1 or a cursor this queue did not hand out.
        """
        raise self._unsupported("listing dead letters")

    def requeue(self, ids: Iterable[str]) -> RequeueResult:
        """Move the dead tasks with these ids back to the queue, attempts reset; ids not dead are reported.

        A move, never a copy: each task leaves the dead letters in the same atomic step that makes
        it ready again, so a crash part-way neither loses nor duplicates one.
        """
        raise self._unsupported("requeue")

    def requeue_all(self) -> RequeueResult:
        """Move every task that was dead when the call began back to the queue, attempts reset."""
        raise self._unsupported("requeue")

    def purge(self, what: Literal["dead", "ready"]) -> int:
        """Delete every dead (`"dead"`) or ready (`"ready"`, not leased, not delayed) task; returns how many.

        Raises ValueError for anything else.
        """
        raise self._unsupported("purge")

    def pause(self) -> None:
        """Stop every consumer sharing this queue, in every process, from leasing until `resume`."""
        raise self._unsupported("pause")

    def resume(self) -> None:
        """Let consumers lease again after `pause`."""
        raise self._unsupported("resume")

    def is_paused(self) -> bool:
        """Whether the queue is paused (the flag lives with the backend, shared by every process)."""
        return False

    def _unsupported(self, operation: str) -> UnsupportedQueueOperation:
        return UnsupportedQueueOperation(f"{operation} is not supported by the {type(self).__name__} queue backend")


def check_purge(what: str) -> None:
    """Raise ValueError unless `what` names something `purge` can remove."""
    if what not in PURGEABLE:
        raise ValueError(f"purge: 'what' must be one of {', '.join(PURGEABLE)}, not {what!r}")


def requested_ids(ids: Iterable[str]) -> list[str]:
    """The task ids asked for, each once, in order; TypeError for a lone string (a common slip for `[id]`)."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"requeue takes a list of task ids, not the single string {ids!r}")
    return list(dict.fromkeys(str(task_id) for task_id in ids))


def check_limit(limit: int) -> None:
    """Raise ValueError unless `limit` is a usable page size."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1, not {limit!r}")


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

    @property
    def capacity(self) -> int:
        """How many units of work the worker can hold at once; 1 by default."""
        return 1

    def consumes(self) -> TaskQueue | None:
        """The queue whose tasks this worker runs; None (the default) for a worker that reads none."""
        return None

    def stuck_for(self) -> float:
        """Seconds the oldest unit of work in progress has been running; 0 when none is (the default)."""
        return 0.0

    def metrics(self) -> dict[str, Any]:
        """Counters for `/metrics` (`processed`, `failed`, ...); empty by default, so status counters are used."""
        return {}

    def close(self) -> None:
        """Free connections once the worker has stopped for good (the runtime closes); nothing by default."""
