"""`plba status` and `plba stop` against real `plba run` processes: finding the instance, tokens, exit codes.

The servers are real processes; the commands whose answers are only checked run in-process.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PlbaProcess, plba, plba_env, plba_in_process, wait_for

TOKEN = "cli-token-5b2e8d"
LISTENING = re.compile(r"control plane listening on (http://127\.0\.0\.1:(\d+))")

# An embedding script: one task held until the test creates a `release` file, so a graceful stop
# has something to drain.
EMBEDDED = textwrap.dedent('''
    import os, sys, time
    from plba import QueueWorker, Task, create_runtime, hookimpl
    from plba.logs import configure_from_settings

    def handle(task):
        sys.stdout.write("started\\n"); sys.stdout.flush()
        while not os.path.exists("release"):
            time.sleep(0.01)
        sys.stdout.write("finished\\n"); sys.stdout.flush()

    class Slow:
        name = "slow"

        @hookimpl
        def register_workers(self, registry):
            queue = registry.queue("slow")
            queue.publish(Task("slow", {}))
            registry.add_worker(QueueWorker("slow-worker", queue, handle))

    runtime = create_runtime(Slow(), settings={"platform": {"control": {"port": 0}}})
    configure_from_settings(runtime.settings)
    sys.exit(runtime.run())
''')


@pytest.fixture
def processes() -> Iterator[list[PlbaProcess | subprocess.Popen]]:
    """Collects background processes and kills any a test left running."""
    started: list = []
    yield started
    for process in started:
        if isinstance(process, PlbaProcess):
            process.kill()
        elif process.poll() is None:
            process.kill()
            process.wait()


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_plba_run(processes, cwd: Path, **env: str) -> tuple[PlbaProcess, str]:
    """`plba run` with no plugins, once it runs; returns it and the control URL read from its log line."""
    process = PlbaProcess("run", cwd=cwd, env=plba_env(None, PLBA_LOAD_PLUGINS="", **env))
    processes.append(process)
    # The control plane listens (and answers "starting") before the workers start: a status read
    # right after that line could see the start still going. "runtime started" comes once it runs.
    process.wait_for_output("runtime started")
    return process, LISTENING.search(process.output()).group(1)


def start_on_a_fixed_port(processes, cwd: Path, attempts: int = 5) -> tuple[PlbaProcess, str, int]:
    """`plba run` on a port fixed in settings.toml; a port taken between choosing and binding it means another one."""
    for _ in range(attempts):
        port = free_port()
        (cwd / "settings.toml").write_text(f"[platform.control]\nport = {port}\n")
        process = PlbaProcess("run", cwd=cwd, env=plba_env(None, PLBA_LOAD_PLUGINS=""))
        processes.append(process)
        wait_for(lambda p=process: "runtime started" in p.output() or p.process.poll() is not None, timeout=20,
                 message="plba run to start or exit")
        if "runtime started" in process.output():
            return process, LISTENING.search(process.output()).group(1), port
        assert "address already in use" in process.output(), process.output()
    raise AssertionError(f"no free port stayed free for {attempts} attempts")


def test_plba_run_logs_its_port_and_plba_stop_with_the_token_ends_it_cleanly(processes, isolated) -> None:
    # Given `plba run` on port 0 with a token
    run, url = start_plba_run(processes, isolated, PLBA_PLATFORM__CONTROL__PORT="0",
                              PLBA_PLATFORM__CONTROL__TOKEN=TOKEN)
    # When `plba stop` is given the instance's URL and token
    result = plba("stop", "--url", url, cwd=isolated, env=plba_env(None, PLBA_PLATFORM__CONTROL__TOKEN=TOKEN))
    # Then it reports the stop, and `plba run` exits 0 after a graceful stop
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"stop requested at {url}", "stopped"]
    assert run.wait() == 0
    assert "stopped: 0 task(s) processed" in run.output()


def test_plba_stop_force_ends_plba_run_with_exit_0_cycle_after_cycle(processes, isolated) -> None:
    # Given `plba run` started again and again (the in-process stop race is covered in test_server.py)
    for _ in range(4):
        run, url = start_plba_run(processes, isolated, PLBA_PLATFORM__CONTROL__PORT="0",
                                  PLBA_PLATFORM__CONTROL__TOKEN=TOKEN)
        # When `plba stop --force` is sent each time
        result = plba("stop", "--force", "--url", url, cwd=isolated,
                      env=plba_env(None, PLBA_PLATFORM__CONTROL__TOKEN=TOKEN))
        # Then each stop is reported and each `plba run` exits 0 without a traceback
        assert result.returncode == 0, result.stderr
        assert run.wait() == 0, run.output()
        assert "Traceback" not in run.output()


def test_plba_stop_without_or_with_a_wrong_token_exits_2_and_says_what_to_set(processes, isolated) -> None:
    # Given `plba run` with a token
    run, url = start_plba_run(processes, isolated, PLBA_PLATFORM__CONTROL__PORT="0",
                              PLBA_PLATFORM__CONTROL__TOKEN=TOKEN)
    # When `plba stop` has no token, then a wrong one
    missing = plba_in_process("stop", "--url", url, cwd=isolated, env=plba_env())
    wrong = plba_in_process("stop", "--url", url, cwd=isolated,
                            env=plba_env(None, PLBA_PLATFORM__CONTROL__TOKEN="nope"))
    # Then both exit 2 with one line naming the setting, and the instance keeps running
    for result in (missing, wrong):
        assert result.returncode == 2
        assert len(result.stderr.splitlines()) == 1
        assert "PLBA_PLATFORM__CONTROL__TOKEN" in result.stderr
    assert "needs a token" in missing.stderr
    assert "does not match" in wrong.stderr
    assert plba_in_process("status", "--url", url, cwd=isolated, env=plba_env()).returncode == 0
    assert run.process.poll() is None


def test_plba_stop_against_an_instance_without_a_token_explains_how_to_enable_actions(processes, isolated) -> None:
    # Given `plba run` without any token
    run, url = start_plba_run(processes, isolated, PLBA_PLATFORM__CONTROL__PORT="0")
    # When `plba stop` is tried
    result = plba_in_process("stop", "--url", url, cwd=isolated, env=plba_env(None, PLBA_PLATFORM__CONTROL__TOKEN="x"))
    # Then it exits 2 relaying how to set a token, and the instance keeps running
    assert result.returncode == 2
    assert "set platform.control.token in .secrets.toml or PLBA_PLATFORM__CONTROL__TOKEN" in result.stderr
    assert run.process.poll() is None


def test_status_and_stop_find_the_instance_from_the_same_settings_files(processes, isolated) -> None:
    # Given a project whose settings.toml fixes the port and whose .secrets.toml holds the token
    (isolated / ".secrets.toml").write_text(f'[platform.control]\ntoken = "{TOKEN}"\n')
    run, url, port = start_on_a_fixed_port(processes, isolated)
    assert url == f"http://127.0.0.1:{port}"
    # When `plba status` and `plba status --json` run in the same project, without --url
    table = plba_in_process("status", cwd=isolated, env=plba_env())
    as_json = plba_in_process("status", "--json", cwd=isolated, env=plba_env())
    # Then they show the instance
    assert table.returncode == 0, table.stderr
    assert "idle" in table.stdout and url in table.stdout
    data = json.loads(as_json.stdout)
    assert data["state"] == "idle"
    assert data["health"]["status"] == "ok"
    assert TOKEN not in as_json.stdout
    # And `plba stop` there stops it
    assert plba("stop", cwd=isolated, env=plba_env()).returncode == 0
    assert run.wait() == 0


def test_status_and_stop_exit_2_with_one_line_when_nothing_listens(isolated) -> None:
    # Given no instance on the configured port
    env = plba_env(None, PLBA_PLATFORM__CONTROL__PORT=str(free_port()), PLBA_PLATFORM__CONTROL__TOKEN=TOKEN)
    # When status and stop are run
    for command in (["status"], ["status", "--json"], ["stop"]):
        result = plba_in_process(*command, cwd=isolated, env=env)
        # Then each exits 2 with one clear line and no traceback
        assert result.returncode == 2, command
        assert result.stderr.startswith("error: no PLBA control plane answers at http://127.0.0.1:")
        assert len(result.stderr.splitlines()) == 1


def test_plba_run_exits_2_with_a_clear_message_when_the_port_is_taken(isolated) -> None:
    # Given a port something else listens on
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # When `plba run` is told to use it
        result = plba("run", cwd=isolated, env=plba_env(None, PLBA_LOAD_PLUGINS="",
                                                         PLBA_PLATFORM__CONTROL__PORT=str(port)))
    # Then it exits 2 with the address and the reason
    assert result.returncode == 2
    assert f"error: control plane: cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_remote_stop_lets_in_flight_work_finish_before_the_embedded_run_exits(processes, isolated) -> None:
    # Given an application embedding the runtime with run(), busy with a slow task
    script = isolated / "app.py"
    script.write_text(EMBEDDED)
    log = (isolated / "app.log").open("w")
    app = subprocess.Popen([sys.executable, str(script)], cwd=isolated, stdout=log, stderr=subprocess.STDOUT,
                           env=plba_env(None, PLBA_PLATFORM__CONTROL__TOKEN=TOKEN))
    processes.append(app)
    output = PlbaProcess.__new__(PlbaProcess)
    output.log_path, output.process, output._log = isolated / "app.log", app, log
    output.wait_for_output("started")
    url = LISTENING.search(output.output()).group(1)
    # When `plba stop` is sent without waiting
    result = plba("stop", "--no-wait", "--url", url, cwd=isolated,
                  env=plba_env(None, PLBA_PLATFORM__CONTROL__TOKEN=TOKEN))
    # Then the stop is accepted while the task is in flight
    assert result.returncode == 0, result.stderr
    output.wait_for_output("stopping: draining in-flight work")
    # And once the task can end, it finishes, the process exits 0, and the summary says one task finished
    (isolated / "release").touch()
    assert output.wait() == 0
    assert "finished" in output.output()
    assert "1 finished while draining" in output.output()


def test_the_cli_and_the_runtime_do_not_import_the_control_plane_until_needed() -> None:
    # Given a fresh interpreter
    code = ("import sys, plba, plba.runtime, plba.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('plba.control', 'waitress', 'prometheus_client'))))")
    # When plba, the runtime module and the CLI are imported
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Then neither waitress, prometheus_client nor plba.control was loaded (dynaconf itself imports Flask)
    assert result.stdout.strip() == "[]"


def test_status_and_stop_send_a_users_token_and_the_role_decides(processes, isolated) -> None:
    # Given users in the project's platform database, and `plba run` there without a service token
    from plba.db import open_database
    from plba.users import Accounts
    from tests.users.conftest import quick_passwords

    accounts = Accounts(open_database(str(isolated / "var" / "plba.sqlite")), passwords=quick_passwords())
    tokens = {}
    for role in ("viewer", "operator"):
        accounts.users.add(role, role, "correct horse battery")
        tokens[role] = accounts.tokens.create(role).secret
    revoked = accounts.tokens.create("operator")
    accounts.tokens.revoke(revoked.info.id)
    accounts.db.close()
    run, url = start_plba_run(processes, isolated, PLBA_PLATFORM__CONTROL__PORT="0")
    # When `plba status` has no token, a revoked one, then the viewer's through --token
    missing = plba_in_process("status", "--url", url, cwd=isolated, env=plba_env())
    refused = plba_in_process("status", "--url", url, "--token", revoked.secret, cwd=isolated, env=plba_env())
    viewer = plba_in_process("status", "--url", url, "--token", tokens["viewer"], cwd=isolated, env=plba_env())
    # Then the first two exit 2 with one line saying why, the viewer reads
    assert (missing.returncode, len(missing.stderr.splitlines())) == (2, 1)
    assert "needs a token" in missing.stderr and "PLBA_TOKEN" in missing.stderr
    assert refused.returncode == 2 and "the bearer token has been revoked" in refused.stderr
    assert viewer.returncode == 0, viewer.stderr
    # When the viewer's token (in PLBA_TOKEN) asks for a stop, then it is refused for its role
    stop_as_viewer = plba_in_process("stop", "--url", url, cwd=isolated,
                                     env=plba_env(None, PLBA_TOKEN=tokens["viewer"]))
    assert stop_as_viewer.returncode == 2
    assert stop_as_viewer.stderr.strip().endswith("refused: viewer has the viewer role; this request needs operator")
    assert run.process.poll() is None
    # When the operator's token asks, then the instance stops cleanly
    assert plba("stop", "--url", url, cwd=isolated, env=plba_env(None, PLBA_TOKEN=tokens["operator"])).returncode == 0
    assert run.wait() == 0
