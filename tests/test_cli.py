"""`plba` as users run it: real subprocesses, signals, exit codes and one-line errors."""

from __future__ import annotations

import signal
from pathlib import Path

from plba import __version__
from tests.helpers import PlbaProcess, plba, plba_env, write_distribution

SLOW_PLUGIN = '''
import os
import sys
import time
from pathlib import Path

from plba import QueueWorker, Task, hookimpl


def say(text):
    # One write per line, so lines from threads never interleave in the captured output.
    sys.stdout.write(text + "\\n")
    sys.stdout.flush()


def handle(task):
    # Runs until its time is up, or at once when the test creates the file named in SLOW_RELEASE.
    say(f"started {task.payload}")
    release = Path(os.environ.get("SLOW_RELEASE", "/nonexistent"))
    deadline = time.monotonic() + task.payload["seconds"]
    while time.monotonic() < deadline and not release.exists():
        time.sleep(0.01)
    say(f"finished {task.payload}")


@hookimpl
def register_workers(registry):
    queue = registry.queue("slow")
    queue.publish(Task("slow", {"seconds": registry.settings.get("slow.seconds", 1.0)}))
    queue.publish(Task("slow", {"seconds": 0}))
    registry.add_worker(QueueWorker("slow-worker", queue, handle))
'''

CRASHING_PLUGIN = '''
from plba import hookimpl
from plba.contracts import Worker, WorkerHealth, WorkerStatus


class Crasher(Worker):
    name = "crasher"
    critical = True

    def start(self):
        raise RuntimeError("cannot reach the payment gateway")

    def stop(self, force=False):
        pass

    def health(self):
        return WorkerHealth("unhealthy", "down")

    def status(self):
        return WorkerStatus("stopped")


@hookimpl
def register_workers(registry):
    registry.add_worker(Crasher())
'''


def slow_plugin_env(tmp_path: Path, seconds: str, **extra: str) -> dict[str, str]:
    """Environment that runs only the slow plugin, whose first task takes `seconds`."""
    site = write_distribution(tmp_path / "slow-site", "slow-plugin", "1.0", {"slow": "slow_plugin"},
                              {"slow_plugin": SLOW_PLUGIN})
    return plba_env(site, PLBA_PLATFORM__CONTROL__ENABLED="false", PLBA_LOAD_PLUGINS="slow",
                    PLBA_SLOW__SECONDS=seconds, **extra)


def start(running, project, env, *args: str) -> PlbaProcess:
    process = PlbaProcess("run", *args, cwd=project, env=env)
    running.append(process)
    return process


def test_version_is_printed(project, env) -> None:
    result = plba("--version", cwd=project, env=env)
    assert result.stdout.strip() == f"plba {__version__}"


def test_run_refuses_to_start_while_a_selected_plugin_is_broken(project, env) -> None:
    # Given a broken plugin among the installed ones
    result = plba("run", cwd=project, env=env)
    # Then run exits 3 with one line naming the plugin, its distribution and version, without a traceback
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "error: plugin 'broken' (acme-broken 0.0.1) is broken: ImportError: the acme_broken plugin needs a module "
        "that is not installed (deselect it with --plugin or PLBA_LOAD_PLUGINS)"]


def test_run_with_the_broken_plugin_deselected_handles_work_and_stops_on_sigterm(running, project, env) -> None:
    # Given only the working plugin selected
    process = start(running, project, env, "--plugin", "acme")
    # When it has handled its jobs and gets SIGTERM
    process.wait_for_output("handled {'n': 2}")
    process.wait_for_output("runtime started")
    process.signal(signal.SIGTERM)
    # Then it stops gracefully with exit code 0 and a summary
    assert process.wait() == 0
    # (the last job may still be in flight when the signal comes: it then finishes while draining)
    assert "stopped: 3 task(s) processed and 0 failed during the run;" in process.output()
    assert "0 forced back to the queue, 0 left queued" in process.output()


def test_the_selection_variable_deselects_the_broken_plugin(running, project, env) -> None:
    process = start(running, project, {**env, "PLBA_LOAD_PLUGINS": "acme"})
    process.wait_for_output("runtime started")
    process.signal(signal.SIGINT)
    assert process.wait() == 0


def test_sigterm_lets_the_in_flight_task_finish(running, project, tmp_path) -> None:
    # Given a task in flight that finishes only when the test says so
    release = tmp_path / "release"
    env = slow_plugin_env(tmp_path, seconds="600", SLOW_RELEASE=str(release))
    process = start(running, project, env)
    process.wait_for_output("started {'seconds': 600}")
    # When SIGTERM arrives and the task then finishes during the drain
    process.signal(signal.SIGTERM)
    process.wait_for_output("stopping: draining")
    release.touch()
    # Then the process exits 0 after the task finished, and the summary says so
    assert process.wait() == 0
    output = process.output()
    assert "finished {'seconds': 600}" in output
    assert ("stopped: 1 task(s) processed and 0 failed during the run; 1 finished while draining, "
            "0 forced back to the queue, 1 left queued") in output


def test_a_second_sigint_forces_the_stop(running, project, tmp_path) -> None:
    env = slow_plugin_env(tmp_path, seconds="600")
    process = start(running, project, env)
    process.wait_for_output("started {'seconds': 600}")
    process.signal(signal.SIGINT)
    process.wait_for_output("stopping: draining")
    process.signal(signal.SIGINT)
    assert process.wait() == 0
    output = process.output()
    assert "forcing stop" in output and "1 forced back to the queue" in output
    assert "finished {'seconds': 600}" not in output


def test_the_shutdown_budget_bounds_a_graceful_stop(running, project, tmp_path) -> None:
    env = slow_plugin_env(tmp_path, seconds="600", PLBA_PLATFORM__SHUTDOWN_TIMEOUT="0.3")
    process = start(running, project, env)
    process.wait_for_output("started {'seconds': 600}")
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    output = process.output()
    assert "0 finished while draining, 1 forced back to the queue (workers: slow-worker), 2 left queued" in output
    # And it warns that the tasks left in the memory queue die with the process
    assert "2 task(s) left in memory queue 'slow' are lost when this process exits" in output


def test_a_critical_worker_that_keeps_crashing_ends_run_with_exit_code_one(running, project, tmp_path) -> None:
    site = write_distribution(tmp_path / "crash-site", "crash-plugin", "1.0", {"crash": "crash_plugin"},
                              {"crash_plugin": CRASHING_PLUGIN})
    env = plba_env(site, PLBA_PLATFORM__CONTROL__ENABLED="false", PLBA_LOAD_PLUGINS="crash",
                   PLBA_PLATFORM__SUPERVISOR__RESTART_BUDGET="2", PLBA_PLATFORM__SUPERVISOR__RESTART_BACKOFF="0.01")
    process = start(running, project, env)
    assert process.wait() == 1
    output = process.output()
    assert "worker crasher failed to start: start() raised RuntimeError: cannot reach the payment gateway" in output
    assert "error: critical worker 'crasher' could not be kept alive" in output
    assert "Traceback" not in output


def test_a_configuration_error_is_one_line_per_problem_with_exit_code_two(project, env) -> None:
    (project / "settings.toml").write_text("[platform]\nshutdown_timeout = -5\n[platform.control]\nport = 'x'\n")
    result = plba("run", "--plugin", "acme", cwd=project, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: platform.") for line in lines), result.stderr


def test_a_missing_config_file_is_named(project, env) -> None:
    result = plba("run", "--config", "prod.toml", cwd=project, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: prod.toml: configuration file not found"


def test_an_unknown_plugin_name_is_a_usage_error(project, env) -> None:
    result = plba("run", "--plugin", "nope", cwd=project, env=env)
    assert result.returncode == 2 and "plugin 'nope' is not installed" in result.stderr


def test_config_show_masks_secrets_and_check_validates(project, env) -> None:
    (project / "settings.toml").write_text("[acme]\njobs = 2\n")
    (project / ".secrets.toml").write_text('[platform.control]\ntoken = "hunter2"\n')
    shown = plba("config", "show", "--json", cwd=project, env=env)
    assert shown.returncode == 0 and "hunter2" not in shown.stdout
    assert '"token": "********"' in shown.stdout
    check = plba("config", "check", cwd=project, env={**env, "PLBA_LOAD_PLUGINS": "acme"})
    assert check.returncode == 0 and "configuration is valid" in check.stdout


def test_config_check_runs_plugin_validators(project, env) -> None:
    (project / "settings.toml").write_text("[acme]\njobs = -1\n")
    check = plba("config", "check", cwd=project, env={**env, "PLBA_LOAD_PLUGINS": "acme"})
    assert check.returncode == 2 and "acme.jobs" in check.stderr


def test_json_logs_are_one_object_per_line(running, project, env) -> None:
    import json

    process = start(running, project, {**env, "PLBA_LOG__FORMAT": "json"}, "--plugin", "acme")
    process.wait_for_output("runtime started")
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    records = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
    assert records and {"ts", "level", "logger", "message", "trace_id", "span_id"} <= set(records[0])
