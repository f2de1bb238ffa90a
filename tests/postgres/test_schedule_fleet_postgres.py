"""A fleet with PostgreSQL alone: cluster store, queue and platform database in one database, no Redis.

Three `plba run` processes fire a schedule every second once per slot, also after one is killed
with SIGKILL; each lists the others at `GET /instances`; users and tokens made with the CLI in
the PostgreSQL platform database guard their control planes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from plba.testing import wait_until
from tests.helpers import PlbaProcess, plba
from tests.postgres.server import free_port
from tests.schedule.fleet import fleet_env, run_fleet

SETTINGS = '''
[platform]
database = "{url}"

[platform.cluster]
url = "{url}"
heartbeat_interval = 0.3

[platform.queues.fleet]
backend = "postgres"
url = "{url}"
'''


def get(base: str, path: str, token: str | None) -> tuple[int, Any]:
    """GET `path` of a control plane, with a bearer token when given: (status, JSON)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_a_fleet_on_postgresql_alone_fires_once_per_slot_lists_itself_and_checks_tokens(database_url,
                                                                                         tmp_path: Path) -> None:
    # Given settings naming one PostgreSQL database for everything, and a user with a token made by the CLI
    env, log = fleet_env(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "settings.toml").write_text(SETTINGS.format(url=database_url))
    ports = [free_port() for _ in range(3)]
    envs = [{**env, "PLBA_PLATFORM__CONTROL__PORT": str(port)} for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    token = make_token(workdir, env)

    def listed(fleet: list[PlbaProcess]) -> None:
        # Then a control plane refuses a request without a token, and with it lists the three instances
        assert get(bases[1], "/instances", None)[0] == 401
        status, body = get(bases[1], "/instances", token)
        assert status == 200
        assert sorted(record["control_url"] for record in body["instances"]) == sorted(bases)
        assert {record["pid"] for record in body["instances"]} == {process.process.pid for process in fleet}

    def killed_one_left(fleet: list[PlbaProcess]) -> None:
        # And once one is killed, the others list only the two of them
        wait_until(lambda: sorted(r["control_url"] for r in get(bases[2], "/instances", token)[1]["instances"])
                   == sorted(bases[1:]), message="the killed instance left the list")

    # When they run, one is killed and the others run on, then each slot fired once (see run_fleet)
    run_fleet(workdir, envs, log, while_running=listed, after_kill=killed_one_left)


def make_token(workdir: Path, env: dict[str, str]) -> str:
    """Add a viewer through the CLI and create a token for them; the token."""
    added = subprocess.run([sys.executable, "-m", "plba", "users", "add", "ops", "--role", "viewer",
                            "--password-stdin"], cwd=workdir, env=env, input="correct horse battery\n",
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    created = plba("tokens", "create", "ops", cwd=workdir, env=env)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()
