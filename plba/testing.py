"""pytest plugin for testing PLBA plugins and queue backends: `plba_runtime`, `drain`, waiting helpers, `QueueContract`.

pytest loads this module in every test run wherever plba is installed, so it imports only the
standard library, pytest and plba's light contracts at the top; the runtime (dynaconf) loads
when a fixture is used.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pytest

from plba.backoff import Backoff
from plba.contracts import Task, TaskQueue

if TYPE_CHECKING:
    from plba.runtime import RuntimeManager

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


def wait_until(condition: Callable[[], T | None], timeout: float = DEFAULT_TIMEOUT, message: str = "condition",
               interval: float = 0.01, wake: threading.Event | None = None) -> T:
    """Call `condition` until it returns something truthy and return that; AssertionError after `timeout` seconds.

    `condition` is called every `interval` seconds, and at once whenever `wake` is set (a stop, a
    record arriving): whoever changes what it looks at may set `wake` instead of being polled for.
    """
    wake = wake or threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        if wake.wait(interval):
            wake.clear()


def drain(runtime: RuntimeManager, *queues: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until the queues (all, or those named) hold nothing ready, delayed or in flight, and no worker is busy.

    AssertionError naming the queue or the workers after `timeout` seconds. Like dramatiq's
    `broker.join(queue)` followed by `worker.join()`: afterwards every task published before
    the call has been handled, acked, retried to the end or dead-lettered. An in-memory queue
    is waited on without polling; a queue kept by a server is read until empty.
    """
    deadline = time.monotonic() + timeout
    known = runtime.registry.queues if runtime.registry is not None else {}
    unknown = [name for name in queues if name not in known]
    if unknown:
        raise KeyError(f"no queue named {', '.join(map(repr, unknown))}; the runtime has {sorted(known)}")
    for name in queues or sorted(known):
        queue = known[name]
        queue.wait_empty(max(0.0, deadline - time.monotonic()))
        wait_until(partial(_is_empty, queue), max(0.0, deadline - time.monotonic()),
                   message=f"queue {name!r} to hold no ready, delayed or in-flight task")
    wait_until(lambda: not _busy_workers(runtime), max(0.0, deadline - time.monotonic()),
               message="every worker to finish its task")


def _is_empty(queue: TaskQueue) -> bool:
    stats = queue.stats()
    return not any(stats.get(key) for key in ("depth", "delayed", "in_flight"))


def _busy_workers(runtime: RuntimeManager) -> list[str]:
    return [status["name"] for status in runtime.status()["workers"] if status.get("in_flight")]


def worker_status(runtime: RuntimeManager, name: str) -> dict[str, Any]:
    """The status of the worker called `name`: state, in_flight, processed, failed, last_error, restarts."""
    workers = runtime.status()["workers"]
    for status in workers:
        if status["name"] == name:
            return status
    raise KeyError(f"no worker named {name!r}; the runtime has {sorted(w['name'] for w in workers)}")


def health_of(runtime: RuntimeManager, name: str) -> dict[str, Any]:
    """The health reading of the component called `name` (a worker or a check): status, detail, critical."""
    components = runtime.health()["components"]
    if name not in components:
        raise KeyError(f"no health component named {name!r}; the runtime has {sorted(components)}")
    return components[name]


class RuntimeFactory:
    """Builds runtimes for one test and closes every one of them when the test ends.

    Each runtime reads only what the test gives it: no `settings.toml` from the working
    directory and no `PLBA_...` variables from the shell, so a test means the same everywhere.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtimes: list[RuntimeManager] = []

    def __call__(self, *plugins: Any, settings: Mapping[str, Any] | None = None, http: bool = False,
                 config_path: str | os.PathLike | None = None, start: bool = True) -> RuntimeManager:
        """A runtime running `plugins` (modules, objects or ApplicationModules) with `settings` layered on top.

        `http=True` also serves the control plane, on a free port unless `settings` picks one.
        `start=False` returns it unbuilt, for tests of `build()` or `run()` themselves.
        """
        from plba.config import ConfigurationManager
        from plba.errors import PluginError
        from plba.plugins import PluginSet
        from plba.runtime import RuntimeManager

        overrides = _merged({"platform": {"control": {"enabled": True, "port": 0}}} if http else {}, settings or {})
        config = ConfigurationManager([config_path] if config_path else [], root=self.root, environ={},
                                      overrides=overrides)
        plugin_set = PluginSet()
        for plugin in plugins:
            info = plugin_set.add(plugin)
            if info.status != "loaded":
                raise PluginError(f"plugin {info.name!r} cannot be registered: {info.error}")
        runtime = RuntimeManager(config, plugin_set, enable_http_control=http)
        # Registered before starting, so a runtime whose start fails half-way is still closed.
        self.runtimes.append(runtime)
        if start:
            runtime.start()
        return runtime

    def close(self) -> None:
        """Stop and close every runtime made, newest first."""
        while self.runtimes:
            self.runtimes.pop().close()


@pytest.fixture
def plba_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeFactory]:
    """Factory: `plba_runtime(*plugins, settings={...}, http=False)` gives a started runtime, closed after the test."""
    factory = RuntimeFactory(tmp_path_factory.mktemp("plba-config"))
    yield factory
    factory.close()


def _merged(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` deep-merged over `base`, tables merged key by key."""
    result = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# -- the TaskQueue contract, for every backend ------------------------------------------------

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

# A consumer in its own process: lease one task, say which, then hang until killed.
_LEASE_AND_HANG = """
import json, sys
from plba.queue import open_queue
name, table = json.loads(sys.argv[1])
queue = open_queue(name, table)
task = queue.consume(timeout=60)
print(task.id if task else "nothing", flush=True)
sys.stdin.read()  # until killed, or at once when the test's process is gone
"""


class QueueMaker:
    """The `make_queue` fixture of `QueueContract`: each call opens a fresh, empty queue by settings alone."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.table = dict(table)
        self.opened: list[TaskQueue] = []
        self._specs: dict[int, tuple[str, dict[str, Any]]] = {}

    def __call__(self, **options: Any) -> TaskQueue:
        """A new queue with a name of its own; `options` are `[platform.queues.<name>]` keys over the table."""
        return self._open(f"contract-{uuid.uuid4().hex[:12]}", {**self.table, **options})

    def spec(self, queue: TaskQueue) -> tuple[str, dict[str, Any]]:
        """The (name, table) that opens `queue` again with `plba.queue.open_queue`, here or in another process."""
        return self._specs[id(queue)]

    def reopen(self, queue: TaskQueue) -> TaskQueue:
        """Another handle on the same queue, as another process would open it (another consumer)."""
        return self._open(*self.spec(queue))

    def close(self) -> None:
        """Close every queue opened."""
        while self.opened:
            self.opened.pop().close()

    def _open(self, name: str, table: dict[str, Any]) -> TaskQueue:
        from plba.queue import open_queue

        queue = open_queue(name, table)
        self.opened.append(queue)
        self._specs[id(queue)] = (name, table)
        return queue


class QueueContract:
    """The whole `TaskQueue` contract as tests; a backend passes it by subclassing it in a test module.

    The subclass (named `Test...`) provides the fixture `queue_table`: the `[platform.queues.<name>]`
    table that selects and reaches the backend, such as `{"backend": "acme", "url": "..."}`. Every
    queue is opened from it through `plba.queue.open_queue`, as settings select a backend. A backend
    whose queues live inside one process sets `cross_process = False`: the test of a consumer
    process killed mid-task is then skipped, and other consumers share the one queue object.
    Options the tests pass: `max_attempts`, `retry_delay`, `retry_delay_max`, `visibility_timeout`,
    `prefetch` and `dead_max`; a backend ignores those it has no use for.
    """

    cross_process: ClassVar[bool] = True

    @pytest.fixture
    def queue_table(self) -> dict[str, Any]:
        """The backend's settings table; every subclass overrides this fixture."""
        pytest.fail(f"{type(self).__name__} must define the queue_table fixture (the backend's settings table)")

    @pytest.fixture
    def make_queue(self, queue_table: dict[str, Any]) -> Iterator[QueueMaker]:
        """`make_queue(**options)`: a fresh, empty queue; all are closed after the test."""
        maker = QueueMaker(queue_table)
        yield maker
        maker.close()

    def another_consumer(self, make_queue: QueueMaker, queue: TaskQueue) -> TaskQueue:
        """A second handle on `queue`, as another process has it; the queue itself where queues stay in one process."""
        return make_queue.reopen(queue) if self.cross_process else queue

    # -- producing and consuming --------------------------------------------------------------

    def test_a_published_task_is_consumed_with_its_data_then_acked_for_good(self, make_queue: QueueMaker) -> None:
        """Given a published task, then consume returns it intact with its first attempt, and after ack it is gone."""
        queue = make_queue()
        task = Task("greet", {"who": "world", "n": [1, 2]}, {"origin": "contract"})
        queue.publish(task)
        got = queue.consume(timeout=10)
        assert got is not None, "a published task was not delivered"
        assert (got.id, got.name, got.payload) == (task.id, "greet", {"who": "world", "n": [1, 2]})
        assert got.metadata["origin"] == "contract" and got.attempts == 1
        queue.ack(got)
        assert queue.consume(timeout=0.2) is None
        stats = queue.stats()
        assert (stats["depth"], stats["in_flight"], stats["dead"]) == (0, 0, 0)

    def test_an_empty_queue_returns_none_after_the_timeout(self, make_queue: QueueMaker) -> None:
        """Given nothing published, then consume waits its timeout and returns None."""
        assert make_queue().consume(timeout=0.2) is None

    def test_nack_without_a_delay_delivers_again_with_the_attempt_counted(self, make_queue: QueueMaker) -> None:
        """Given a consumed task nacked, then it is delivered again as attempt 2: attempts count at delivery."""
        queue = make_queue()
        queue.publish(Task("t", 1))
        first = queue.consume(timeout=10)
        assert first is not None and first.attempts == 1
        queue.nack(first)
        again = queue.consume(timeout=10)
        assert again is not None and again.id == first.id and again.attempts == 2
        queue.ack(again)

    def test_nack_with_a_delay_hides_the_task_until_it_is_due(self, make_queue: QueueMaker) -> None:
        """Given tasks nacked with delays, then a long delay keeps one hidden (delayed), a short one returns."""
        queue = make_queue(prefetch=1)
        queue.publish(Task("slow", 1))
        queue.publish(Task("quick", 2))
        slow, quick = queue.consume(timeout=10), queue.consume(timeout=10)
        assert slow is not None and quick is not None
        queue.nack(slow, retry_delay=600)
        queue.nack(quick, retry_delay=0.2)
        again = queue.consume(timeout=30)
        assert again is not None and again.id == quick.id and again.attempts == 2
        assert queue.stats()["delayed"] == 1
        assert queue.consume(timeout=0.2) is None
        queue.ack(again)

    def test_release_gives_a_task_back_without_counting_the_attempt(self, make_queue: QueueMaker) -> None:
        """Given a consumed task released unstarted, then its next delivery is still attempt 1."""
        queue = make_queue()
        queue.publish(Task("t", 1))
        first = queue.consume(timeout=10)
        assert first is not None
        queue.release(first)
        again = queue.consume(timeout=10)
        assert again is not None and again.id == first.id and again.attempts == 1
        queue.ack(again)

    def test_interrupt_wakes_a_blocked_consumer_with_none(self, make_queue: QueueMaker) -> None:
        """Given a consumer blocked on an empty queue, then interrupt makes it return None long before its timeout."""
        queue = make_queue()
        results: list[Task | None] = []
        consumer = threading.Thread(target=lambda: results.append(queue.consume(timeout=120)), daemon=True)
        consumer.start()

        def interrupted() -> bool:
            queue.interrupt()
            return not consumer.is_alive()

        wait_until(interrupted, timeout=30, message="the blocked consumer to return after interrupt")
        assert results == [None]

    def test_consume_many_and_ack_many_handle_batches(self, make_queue: QueueMaker) -> None:
        """Given ten tasks, then consume_many leases batches of at most the count asked; ack_many settles all."""
        queue = make_queue()
        published = [Task("t", n) for n in range(10)]
        for task in published:
            queue.publish(task)
        leased: list[Task] = []
        while len(leased) < len(published):
            batch = queue.consume_many(4, timeout=10)
            assert 1 <= len(batch) <= 4, f"consume_many(4) returned {len(batch)} tasks"
            leased += batch
        assert sorted(t.id for t in leased) == sorted(t.id for t in published)
        queue.ack_many(leased)
        assert queue.consume(timeout=0.2) is None
        stats = queue.stats()
        assert (stats["depth"], stats["in_flight"]) == (0, 0)

    # -- reading --------------------------------------------------------------------------------

    def test_stats_count_each_state_and_name_the_backend(self, make_queue: QueueMaker,
                                                        queue_table: dict[str, Any]) -> None:
        """Given a task ready, one leased, one delayed and one dead, then stats counts one of each, not paused."""
        queue = make_queue(prefetch=1)
        for n in range(4):
            queue.publish(Task("t", n))
        delayed, dead, leased = (queue.consume(timeout=10) for _ in range(3))
        assert delayed is not None and dead is not None and leased is not None
        queue.nack(delayed, retry_delay=600)
        queue.dead_letter(dead, "ValueError: bad")
        stats = queue.stats()
        assert stats["backend"] == queue_table.get("backend", "memory")
        assert {key: stats[key] for key in ("depth", "in_flight", "delayed", "dead", "paused")} == {
            "depth": 1, "in_flight": 1, "delayed": 1, "dead": 1, "paused": False}

    def test_the_retry_policy_comes_from_the_settings_table(self, make_queue: QueueMaker) -> None:
        """Given max_attempts and retry delays in the table, then the queue declares them for its workers."""
        queue = make_queue(max_attempts=7, retry_delay=2.0, retry_delay_max=10.0)
        assert queue.max_attempts == 7
        assert queue.retry_backoff == Backoff(base=2.0, cap=10.0)

    # -- dead letters ---------------------------------------------------------------------------

    def test_a_dead_letter_is_listed_with_its_error_attempts_time_and_trace(self, make_queue: QueueMaker) -> None:
        """Given a dead-lettered task, then list_dead shows id, name, attempts, error, time, trace and payload."""
        queue = make_queue()
        task = Task("order", {"sku": "X-1"}, {"traceparent": TRACEPARENT})
        queue.publish(task)
        leased = queue.consume(timeout=10)
        assert leased is not None
        before = time.time()
        queue.dead_letter(leased, "ValueError: no such sku")
        after = time.time()
        page = queue.list_dead()
        assert page.next_cursor is None and len(page.tasks) == 1
        dead = page.tasks[0]
        assert (dead.id, dead.name, dead.attempts, dead.error, dead.payload) == (
            task.id, "order", 1, "ValueError: no such sku", {"sku": "X-1"})
        assert dead.trace_id == TRACEPARENT.split("-")[1]
        assert dead.dead_at is not None and dead.dead_at.tzinfo is not None
        assert before - 1 <= dead.dead_at.timestamp() <= after + 1
        assert dead.to_dict()["dead_at"] == dead.dead_at.isoformat()
        stats = queue.stats()
        assert (stats["dead"], stats["in_flight"], stats["depth"]) == (1, 0, 0)

    def test_dead_letters_are_listed_oldest_first_in_pages(self, make_queue: QueueMaker) -> None:
        """Given 25 dead letters, then pages of 10 follow each other by cursor and list each once, in order of death."""
        queue = make_queue()
        died = self._dead_letters(queue, 25)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = queue.list_dead(limit=10, cursor=cursor)
            pages += 1
            seen += [dead.id for dead in page.tasks]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [task.id for task in died] and pages == 3

    def test_list_dead_refuses_a_bad_limit_or_cursor(self, make_queue: QueueMaker) -> None:
        """Given a limit below 1 or a cursor the queue never gave, then list_dead raises ValueError."""
        queue = make_queue()
        with pytest.raises(ValueError):
            queue.list_dead(limit=0)
        with pytest.raises(ValueError):
            queue.list_dead(cursor="not a cursor")

    def test_the_dead_letters_are_capped_by_dead_max(self, make_queue: QueueMaker) -> None:
        """Given dead_max = 3 and five deaths, then the three newest dead letters are kept."""
        queue = make_queue(dead_max=3)
        died = self._dead_letters(queue, 5)
        assert queue.stats()["dead"] == 3
        assert [dead.id for dead in queue.list_dead().tasks] == [task.id for task in died[2:]]

    # -- requeue and purge ------------------------------------------------------------------------

    def test_requeue_by_id_moves_those_tasks_back_and_reports_unknown_ids(self, make_queue: QueueMaker) -> None:
        """Given three dead letters, then requeue of one id and an unknown one moves one, reports the other."""
        queue = make_queue(prefetch=1)
        first, *rest = self._dead_letters(queue, 3)
        result = queue.requeue([first.id, "no-such-task"])
        assert (result.moved, result.unknown) == (1, ["no-such-task"])
        assert [dead.id for dead in queue.list_dead().tasks] == [task.id for task in rest]
        back = queue.consume(timeout=10)
        assert back is not None and back.id == first.id and back.attempts == 1 and "error" not in back.metadata
        queue.ack(back)
        again = queue.requeue([first.id])
        assert (again.moved, again.unknown) == (0, [first.id]), "a requeued task must no longer be dead"

    def test_requeue_all_moves_every_dead_task_exactly_once(self, make_queue: QueueMaker) -> None:
        """Given five dead letters, then requeue_all moves five, none stays dead, and each is delivered once."""
        queue = make_queue()
        died = self._dead_letters(queue, 5)
        assert queue.requeue_all().moved == 5
        assert queue.stats()["dead"] == 0 and queue.list_dead().tasks == []
        assert queue.requeue_all().moved == 0
        assert sorted(self._drain(queue)) == sorted(task.id for task in died)

    def test_concurrent_requeues_move_each_task_once(self, make_queue: QueueMaker) -> None:
        """Given two consumers requeueing all of the same dead letters at once, then together they move each once."""
        queue = make_queue()
        died = self._dead_letters(queue, 50)
        other = self.another_consumer(make_queue, queue)
        moved: list[int] = []
        threads = [threading.Thread(target=lambda q=q: moved.append(q.requeue_all().moved)) for q in (queue, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sum(moved) == 50
        assert sorted(self._drain(queue)) == sorted(task.id for task in died)

    def test_purge_removes_ready_or_dead_tasks_only(self, make_queue: QueueMaker) -> None:
        """Given ready, leased, delayed and dead tasks, then purge("ready") and purge("dead") remove only those."""
        queue = make_queue(prefetch=1)
        self._dead_letters(queue, 2)
        for n in range(4):
            queue.publish(Task("t", n))
        delayed, leased = queue.consume(timeout=10), queue.consume(timeout=10)
        assert delayed is not None and leased is not None
        queue.nack(delayed, retry_delay=600)
        assert queue.purge("ready") == 2
        assert queue.purge("dead") == 2
        stats = queue.stats()
        assert {key: stats[key] for key in ("depth", "in_flight", "delayed", "dead")} == {
            "depth": 0, "in_flight": 1, "delayed": 1, "dead": 0}
        queue.ack(leased)
        with pytest.raises(ValueError):
            queue.purge("everything")  # type: ignore[arg-type]

    # -- pause ------------------------------------------------------------------------------------

    def test_a_paused_queue_leases_to_no_consumer_until_resumed(self, make_queue: QueueMaker) -> None:
        """Given a paused queue, then no consumer gets its task (each waits), and one waiting gets it on resume."""
        queue = make_queue()
        other = self.another_consumer(make_queue, queue)
        queue.pause()
        task = Task("t", 1)
        queue.publish(task)
        assert queue.is_paused() and other.is_paused()
        assert queue.stats()["paused"] is True and other.stats()["paused"] is True
        for consumer in (queue, other):
            started = time.monotonic()
            assert consumer.consume(timeout=0.3) is None
            assert time.monotonic() - started >= 0.3, "a paused consume must wait, not return at once"
        results: list[Task | None] = []
        waiting = threading.Thread(target=lambda: results.append(other.consume(timeout=60)), daemon=True)
        waiting.start()
        queue.resume()
        waiting.join(60)
        assert results and results[0] is not None and results[0].id == task.id
        assert not queue.is_paused() and queue.stats()["paused"] is False
        other.ack(results[0])

    # -- processes --------------------------------------------------------------------------------

    def test_a_task_whose_consumer_process_was_killed_is_delivered_again(self, make_queue: QueueMaker) -> None:
        """Given a consumer process killed (SIGKILL) holding a task, then it comes back after the visibility timeout."""
        if not self.cross_process:
            pytest.skip(f"{type(self).__name__}: queues of this backend live inside one process")
        queue = make_queue(visibility_timeout=1)
        task = Task("t", 1)
        queue.publish(task)
        name, table = make_queue.spec(queue)
        child = subprocess.Popen([sys.executable, "-c", _LEASE_AND_HANG, json.dumps([name, table])],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            leased = _read_line(child, timeout=60)
        finally:
            child.kill()
            _, errors = child.communicate()
        assert leased == task.id, f"the consumer process did not lease the task: {leased!r} {errors[-2000:]}"
        again = wait_until(lambda: queue.consume(timeout=0.5), timeout=60, message="the task to be delivered again")
        assert again.id == task.id and again.attempts == 2
        queue.ack(again)

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _dead_letters(queue: TaskQueue, count: int) -> list[Task]:
        """Publish `count` tasks and dead-letter each; returns them in the order they died."""
        for n in range(count):
            queue.publish(Task("doomed", n))
        died = []
        for n in range(count):
            task = queue.consume(timeout=10)
            assert task is not None, f"only {n} of {count} tasks were delivered"
            queue.dead_letter(task, f"RuntimeError: failure {n}")
            died.append(task)
        return died

    @staticmethod
    def _drain(queue: TaskQueue) -> list[str]:
        """Consume and ack until nothing comes within a short wait; the ids delivered, repeats included."""
        ids = []
        while (task := queue.consume(timeout=0.5)) is not None:
            ids.append(task.id)
            queue.ack(task)
        return ids


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line `process` prints, stripped; empty if it ends or stays silent for `timeout` seconds."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""
