"""Several `plba run` processes share one PostgreSQL queue: selected by settings alone, no task lost when one dies."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg
import pytest

from plba.contracts import Task
from plba.queue.postgres import PostgresTaskQueue
from tests.helpers import PlbaProcess, plba_env, wait_for, write_distribution

# A plugin written only against the public API: it handles `jobs` tasks and records each run in
# the same database, marking when it starts so the test can kill a process mid-task.
JOBS_PLUGIN = '''
import os
import time

import psycopg

from plba import QueueWorker, hookimpl

PID = os.getpid()


class Jobs:
    def __init__(self, url, seconds):
        self.url = url
        self.seconds = seconds

    def handle(self, task):
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("INSERT INTO started (task_id, pid) VALUES (%s, %s)", [task.id, PID])
            time.sleep(self.seconds)
            conn.execute("INSERT INTO handled (task_id, pid) VALUES (%s, %s)", [task.id, PID])


@hookimpl
def register_workers(registry):
    jobs = Jobs(registry.settings.get("pgjobs.url"), float(registry.settings.get("pgjobs.seconds", 0.1)))
    queue = registry.queue("jobs")
    registry.add_worker(QueueWorker("pgjobs", queue, jobs.handle, concurrency=2))
'''

TASKS = 40


def make_project(tmp_path: Path, database_url: str) -> Path:
    """A project whose `jobs` queue is on PostgreSQL by settings alone, with the result tables made."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "settings.toml").write_text(f'''
[platform.control]
enabled = false

[platform.queues.jobs]
backend = "postgres"
url = "{database_url}"
visibility_timeout = 2
poll_interval = 0.5

[pgjobs]
url = "{database_url}"
seconds = 0.3
''')
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE started (task_id text, pid int)")
        conn.execute("CREATE TABLE handled (task_id text, pid int)")
    return project


@pytest.fixture
def fleet_project(tmp_path: Path, database_url: str) -> Path:
    """The project on a database of this test's own on the session's cluster."""
    return make_project(tmp_path, database_url)


@pytest.fixture
def fleet_env(tmp_path: Path) -> dict[str, str]:
    """`plba run` sees only the jobs plugin."""
    site = write_distribution(tmp_path / "site", "pgjobs-plugin", "1.0", {"pgjobs": "pgjobs_plugin"},
                              {"pgjobs_plugin": JOBS_PLUGIN})
    return plba_env(site, PLBA_LOAD_PLUGINS="pgjobs")


def test_given_three_processes_on_one_queue_when_one_is_killed_mid_task_then_no_task_is_lost(
        fleet_project, fleet_env, database_url):
    """Given three `plba run` sharing a queue, when one is SIGKILLed mid-task and another started, then every task runs.

    Duplicates are bounded by what the killed process held: tasks it leased and had not acknowledged.
    """
    queue = PostgresTaskQueue("jobs", database_url)
    tasks = [Task("job", n) for n in range(TASKS)]
    queue.publish_many(tasks)
    processes = [PlbaProcess("run", cwd=fleet_project, env=fleet_env) for _ in range(3)]
    try:
        victim = processes[0]
        with psycopg.connect(database_url, autocommit=True) as conn:
            wait_for(lambda: _running_in(conn, victim.process.pid), timeout=60,
                     message="the first process to be in the middle of a task")
            victim.signal(signal.SIGKILL)
            victim.wait(10)
            # What the dead process still held: leased and not acknowledged (run or not).
            held = conn.execute("SELECT count(*) FROM plba.tasks WHERE leased_by LIKE %s",
                                [f"%:{victim.process.pid}:%"]).fetchone()[0]
            assert held >= 1
            processes.append(PlbaProcess("run", cwd=fleet_project, env=fleet_env))

            wait_for(lambda: _handled_ids(conn) == {task.id for task in tasks}, timeout=120,
                     message="every task to be handled by the fleet")
            runs = conn.execute("SELECT count(*) FROM handled").fetchone()[0]
            assert runs - TASKS <= held, f"{runs - TASKS} duplicates, but the killed process held only {held}"
            by_process = conn.execute("SELECT count(DISTINCT pid) FROM handled").fetchone()[0]
            assert by_process >= 2
        wait_for(lambda: queue.stats()["depth"] + queue.stats()["in_flight"] == 0, timeout=30,
                 message="the queue to be empty")
        for process in processes[1:]:
            process.signal(signal.SIGTERM)
        assert [process.wait(30) for process in processes[1:]] == [0, 0, 0]
    finally:
        for process in processes:
            process.kill()
        queue.close()


def _running_in(conn: psycopg.Connection, pid: int) -> bool:
    """Whether process `pid` has started a task it has not finished."""
    return bool(conn.execute("SELECT 1 FROM started s WHERE pid = %s AND NOT EXISTS "
                             "(SELECT 1 FROM handled h WHERE h.task_id = s.task_id AND h.pid = s.pid)",
                             [pid]).fetchone())


def _handled_ids(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT task_id FROM handled")}


def test_given_a_running_fleet_when_postgres_restarts_then_it_recovers_by_itself_and_finishes_the_work(
        tmp_path, fleet_env, own_postgres):
    """Given two `plba run` working through a queue, when PostgreSQL restarts, then they carry on with no task lost."""
    database_url = own_postgres.create_database("fleet")
    project = make_project(tmp_path, database_url)
    queue = PostgresTaskQueue("jobs", database_url, socket_timeout=1)
    tasks = [Task("job", n) for n in range(TASKS)]
    queue.publish_many(tasks)
    queue.close()
    processes = [PlbaProcess("run", cwd=project, env=fleet_env) for _ in range(2)]
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            wait_for(lambda: conn.execute("SELECT count(*) FROM handled").fetchone()[0] >= 3, timeout=60,
                     message="the fleet to handle a few tasks")
        own_postgres.restart()
        with psycopg.connect(database_url, autocommit=True) as conn:
            wait_for(lambda: _handled_ids(conn) == {task.id for task in tasks}, timeout=120,
                     message="every task to be handled after the restart")
        assert all(process.process.poll() is None for process in processes), "a process died in the outage"
        for process in processes:
            process.signal(signal.SIGTERM)
        assert [process.wait(30) for process in processes] == [0, 0]
        assert "unavailable" in processes[0].output() + processes[1].output()
    finally:
        for process in processes:
            process.kill()
