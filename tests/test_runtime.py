"""RuntimeManager through the public API: lifecycle, shutdown budget, failures, plugins given directly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from plba import ApplicationModule, QueueWorker, RuntimeManager, Task, create_runtime, hookimpl
from plba.backoff import Backoff
from plba.contracts import WorkerHealth
from plba.errors import ConfigError, PluginError, StateError
from plba.queue import InMemoryTaskQueue
from tests.helpers import wait_for
from tests.test_supervisor import QUICK, CrashingWorker

SEED_EXAMPLE = '''
from plba import ApplicationModule, QueueWorker, Task, TaskHandler, create_runtime
from plba.queue import InMemoryTaskQueue


class ExampleHandler(TaskHandler):
    def handle(self, task: Task) -> None:
        print(task.payload)


class ExampleModule(ApplicationModule):
    @property
    def name(self) -> str:
        return "example"

    def register(self, registry) -> None:
        queue = InMemoryTaskQueue()
        traces = registry.services.get("traces")

        queue.publish(Task(name="incoming", payload={"hello": "world"}))

        registry.add_queue("incoming", queue)
        registry.add_worker(QueueWorker("example-worker", queue, ExampleHandler(), traces))


runtime = create_runtime(
    ExampleModule(),
    config_path="config.yml",
    enable_http_control=False,
)
runtime.start()
'''


class Blocking(ApplicationModule):
    """One worker whose handler blocks until released, fed with `tasks` tasks."""

    name = "blocking"

    def __init__(self, tasks: int = 1) -> None:
        self.tasks = tasks
        self.release = threading.Event()
        self.started = threading.Event()
        self.queue: InMemoryTaskQueue | None = None

    def handle(self, task: Task) -> None:
        self.started.set()
        self.release.wait(30)

    def register(self, registry) -> None:
        self.queue = registry.queue("blocking")
        for n in range(self.tasks):
            self.queue.publish(Task("t", n))
        registry.add_worker(QueueWorker("blocker", self.queue, self.handle))


def make(*modules, **settings) -> RuntimeManager:
    return create_runtime(*modules, enable_http_control=False, settings=settings or None)


def test_the_seed_readme_example_runs_unchanged_and_prints_its_payload(tmp_path: Path) -> None:
    # Given the README's minimal example, verbatim, next to the config.yml it names
    (tmp_path / "example.py").write_text(SEED_EXAMPLE)
    (tmp_path / "config.yml").write_text("log:\n  level: INFO\n")
    # When it is run as a script
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # Then it prints the payload and exits cleanly
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'hello': 'world'}"


def test_a_runtime_goes_from_idle_to_busy_to_stopped_with_a_summary() -> None:
    # Given a runtime whose only task blocks
    module = Blocking(tasks=1)
    runtime = make(module).start()
    assert runtime.state in ("idle", "busy")
    module.started.wait(10)
    # When the task runs
    assert runtime.state == "busy"
    assert runtime.status()["workers"][0]["in_flight"] == 1
    # And the runtime is stopped while the task finishes within the budget
    threading.Timer(0.05, module.release.set).start()
    summary = runtime.stop(timeout=30)
    # Then the summary counts it as finished, and the runtime is stopped
    assert (summary.finished, summary.forced, summary.queued) == (1, 0, 0)
    assert runtime.state == "stopped"
    runtime.close()


def test_the_shutdown_budget_forces_what_did_not_finish_and_keeps_unstarted_work_queued() -> None:
    # Given a runtime busy with one of three tasks whose handler will not finish
    module = Blocking(tasks=3)
    runtime = make(module, platform={"shutdown_timeout": 0.2}).start()
    module.started.wait(10)
    # When it stops with the configured budget
    summary = runtime.stop()
    # Then the in-flight task is forced back to the queue and the other two stayed queued
    assert summary.forced == 1 and summary.workers_forced == ["blocker"]
    assert summary.queued == 3
    assert module.queue.stats()["in_flight"] == 0
    module.release.set()
    runtime.close()


def test_starting_a_running_runtime_is_refused_and_a_stopped_one_starts_again() -> None:
    module = Blocking(tasks=0)
    runtime = make(module).start()
    with pytest.raises(StateError, match="already"):
        runtime.start()
    runtime.stop()
    runtime.start()
    assert runtime.state == "idle"
    runtime.close()


def test_the_runtime_is_a_context_manager() -> None:
    with make(Blocking(tasks=0)) as runtime:
        assert runtime.state == "idle"
    assert runtime.state == "stopped"


def test_run_returns_zero_after_a_requested_stop() -> None:
    runtime = make(Blocking(tasks=0))
    threading.Timer(0.05, runtime.request_stop).start()
    assert runtime.run() == 0 and runtime.state == "stopped"


def test_a_critical_worker_that_cannot_be_kept_alive_makes_run_return_one() -> None:
    # Given a critical worker that always crashes and a small restart budget
    class Doomed(ApplicationModule):
        name = "doomed"

        def register(self, registry) -> None:
            registry.add_worker(CrashingWorker("doomed", crashes=1000))

    runtime = make(Doomed(), platform={"supervisor": {"restart_budget": 2, "restart_backoff": 0.01}})
    runtime.build()
    runtime.supervisor.policy = QUICK
    # When run
    code = runtime.run()
    # Then the runtime failed, is unhealthy, and says which worker
    assert code == 1
    assert runtime.health()["status"] == "unhealthy"
    assert runtime.failure == "critical worker 'doomed' could not be kept alive"


def test_a_non_critical_worker_that_keeps_crashing_only_degrades_health() -> None:
    class Optional(ApplicationModule):
        name = "optional"

        def register(self, registry) -> None:
            registry.add_worker(CrashingWorker("extra", crashes=1000, critical=False))

    runtime = make(Optional())
    runtime.build()
    runtime.supervisor.policy = QUICK
    runtime.start()
    wait_for(lambda: runtime.supervisor.gave_up_on(), message="give up")
    assert runtime.health()["status"] == "degraded" and runtime.failure is None
    assert runtime.ready() == (True, "ready")
    runtime.close()


def test_health_combines_workers_and_registered_checks() -> None:
    class Checked(ApplicationModule):
        name = "checked"

        def register(self, registry) -> None:
            pass

        def register_health(self, registry) -> None:
            registry.add_health("database", lambda: WorkerHealth("unhealthy", "disk full"), critical=True)
            registry.add_health("cache", lambda: WorkerHealth("degraded", "slow"), critical=False)

    with make(Checked()) as runtime:
        health = runtime.health()
        assert health["status"] == "unhealthy"
        assert health["components"]["database"] == {"status": "unhealthy", "detail": "disk full", "critical": True}
        ready, reason = runtime.ready()
        assert not ready and reason == "database is unhealthy: disk full"


def test_module_style_plugins_are_registered_through_hooks() -> None:
    class Plugin:
        name = "modstyle"
        calls = []

        @hookimpl
        def configure(self, settings):
            self.calls.append(("configure", settings.get("modstyle.greeting")))

        @hookimpl
        def register_workers(self, registry):
            self.calls.append(("register_workers", registry.services.get("traces") is not None))

    with make(Plugin(), modstyle={"greeting": "hi"}) as runtime:
        assert Plugin.calls == [("configure", "hi"), ("register_workers", True)]
        assert runtime.status()["plugins"][0]["hooks"] == ["configure", "register_workers"]


def test_a_plugin_that_fails_to_register_is_named_and_leaves_nothing_behind() -> None:
    # Given a plugin that adds a worker and then fails
    class HalfWay(ApplicationModule):
        name = "halfway"

        def register(self, registry) -> None:
            registry.add_worker(CrashingWorker("orphan", crashes=0))
            raise KeyError("missing_setting")

    runtime = make(Blocking(tasks=0), HalfWay())
    # When the runtime is built
    with pytest.raises(PluginError, match="plugin 'halfway' failed in register_workers: KeyError"):
        runtime.build()
    # Then the plugin is marked failed and its worker was not kept
    info = next(i for i in runtime.plugins.infos if i.name == "halfway")
    assert info.status == "failed" and "missing_setting" in info.error
    assert runtime.registry is None


def test_a_plugin_with_a_misspelled_hook_is_refused_by_name() -> None:
    class Typo:
        name = "typo"

        @hookimpl
        def register_worker(self, registry):  # missing the s
            pass

    with pytest.raises(PluginError, match="plugin 'typo' cannot be registered: .*register_worker"):
        make(Typo())


def test_invalid_platform_settings_list_every_problem() -> None:
    runtime = make(Blocking(tasks=0), platform={"shutdown_timeout": -1, "control": {"port": 70000}},
                   log={"level": "LOUD"})
    with pytest.raises(ConfigError) as error:
        runtime.build()
    text = "\n".join(error.value.problems)
    assert "platform.shutdown_timeout" in text and "platform.control.port" in text and "log.level" in text


def test_a_plugin_validator_failure_is_reported_with_its_key() -> None:
    class Strict(ApplicationModule):
        name = "strict"

        def configure(self, settings) -> None:
            from dynaconf import Validator

            settings.validators.register(Validator("strict.workers", must_exist=True, is_type_of=int))

        def register(self, registry) -> None:
            pass

    with pytest.raises(ConfigError, match="strict.workers"):
        make(Strict()).build()


def test_registry_queue_builds_from_settings_and_is_shared_by_name() -> None:
    queues = []

    class TwoSides(ApplicationModule):
        name = "twosides"

        def register(self, registry) -> None:
            queues.append(registry.queue("jobs"))
            queues.append(registry.queue("jobs"))

    with make(TwoSides(), platform={"queues": {"jobs": {"backend": "memory", "maxsize": 7}}}) as runtime:
        assert queues[0] is queues[1] and queues[0].maxsize == 7
        assert runtime.status()["queues"]["jobs"]["backend"] == "memory"


def test_an_unknown_queue_backend_is_a_configuration_error() -> None:
    class UsesQueue(ApplicationModule):
        name = "usesqueue"

        def register(self, registry) -> None:
            registry.queue("jobs")

    unknown = r"platform.queues.jobs.backend: unknown backend 'kafka' \(installed: memory, postgres, redis\)"
    with pytest.raises(ConfigError, match=unknown):
        make(UsesQueue(), platform={"queues": {"jobs": {"backend": "kafka"}}}).build()


def test_tasks_left_in_memory_are_drained_when_the_interpreter_exits(tmp_path: Path) -> None:
    # Given a script that queues many tasks and returns straight after start()
    script = textwrap.dedent('''
        from plba import ApplicationModule, QueueWorker, Task, create_runtime

        class Many(ApplicationModule):
            name = "many"
            def register(self, registry):
                queue = registry.queue("many")
                for n in range(200):
                    queue.publish(Task("t", n))
                registry.add_worker(QueueWorker("w", queue, lambda task: print(task.payload)))

        create_runtime(Many(), enable_http_control=False).start()
    ''')
    (tmp_path / "many.py").write_text(script)
    result = subprocess.run([sys.executable, "many.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # Then every task was handled before the process ended
    assert result.returncode == 0, result.stderr
    assert sorted(int(line) for line in result.stdout.split()) == list(range(200))


def test_a_forced_stop_counts_the_task_it_forced() -> None:
    # Given a runtime busy with a task that will not finish
    module = Blocking(tasks=1)
    runtime = make(module).start()
    module.started.wait(10)
    # When it is stopped with force
    summary = runtime.stop(force=True)
    # Then the summary says the task was forced back, not finished
    assert (summary.finished, summary.forced, summary.queued) == (0, 1, 1)
    module.release.set()
    runtime.close()


def test_max_attempts_of_a_memory_queue_comes_from_its_settings() -> None:
    attempts = []

    class Failing(ApplicationModule):
        name = "failing"

        def register(self, registry) -> None:
            queue = registry.queue("jobs")
            queue.publish(Task("t", 1))
            registry.add_worker(QueueWorker("w", queue, lambda task: attempts.append(1) or 1 / 0,
                                            retry_backoff=Backoff(base=0.01, cap=0.01)))

    with make(Failing(), platform={"queues": {"jobs": {"max_attempts": 2}}}) as runtime:
        wait_for(lambda: runtime.status()["queues"]["jobs"]["dead"] == 1, message="dead letter")
    assert len(attempts) == 2


def test_a_runtime_whose_control_port_is_taken_can_start_once_it_is_free() -> None:
    import socket

    from plba.errors import ControlPlaneError

    # Given a port that something else holds
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    runtime = create_runtime(Blocking(tasks=0), settings={"platform": {"control": {"port": port}}})
    # When the runtime starts, it fails clearly and starts no worker
    with pytest.raises(ControlPlaneError, match=f"127.0.0.1:{port}"):
        runtime.start()
    assert runtime.state == "not_started" and runtime.control is None
    # And once the port is free, the same runtime starts
    holder.close()
    runtime.start()
    assert runtime.state == "idle" and runtime.control is not None
    runtime.close()


class TasksAndReports(ApplicationModule):
    """Two tasks for a queue worker, and an hourly report schedule."""

    name = "acme"

    def register(self, registry) -> None:
        queue = registry.queue("acme")
        for n in range(2):
            queue.publish(Task("job", n))
        registry.add_worker(QueueWorker("acme-worker", queue, lambda task: None, poll_timeout=0.05))
        registry.schedule("acme.report", lambda firing: None, every=3600)


def test_the_stop_summary_counts_tasks_apart_from_schedule_runs(plba_runtime) -> None:
    # Given a runtime whose queue worker ran two tasks and whose report schedule was run once
    from plba.testing import drain, wait_until

    runtime = plba_runtime(TasksAndReports())
    drain(runtime)
    runtime.scheduler.run_now("acme.report")
    wait_until(lambda: runtime.scheduler.schedules()[0]["runs"] == 1, message="the report run")
    # When it stops, then the two tasks are the tasks, and the report run is the other workers' work
    summary = runtime.stop()
    assert (summary.processed, summary.failed, summary.other_units, summary.other_failed) == (2, 0, 1, 0)
    assert str(summary).startswith("2 task(s) processed and 0 failed during the run "
                                   "(other workers: 1 unit(s) of work, 0 failed); ")
    # And the last hour's throughput counts the tasks only
    assert sum(minute["processed"] for minute in runtime.status()["throughput"]) == 2
