"""Installed as a user installs it: both wheels in a fresh venv, then `plba` in an empty directory.

No settings file and no `PLBA_` variable: every default (the platform's and the bot's) must apply.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.packaging import Installed
from tests.test_zero_setup import stored

pytestmark = pytest.mark.slow


@pytest.fixture
def empty(installed: Installed, tmp_path: Path) -> Path:
    """An empty directory to run the installed `plba` in."""
    installed.need_bot()
    assert list(tmp_path.iterdir()) == []
    return tmp_path


def test_config_check_passes_with_no_settings_at_all(installed: Installed, empty: Path) -> None:
    result = installed.run("plba", "config", "check", cwd=empty)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configuration is valid (no files)"
    assert result.stderr == ""


def test_plugins_list_shows_the_bot_loaded(installed: Installed, empty: Path) -> None:
    result = installed.run("plba", "plugins", "list", "--json", cwd=empty)
    assert result.returncode == 0, result.stderr
    (bot,) = [row for row in json.loads(result.stdout) if row["name"] == "mail_order_bot"]
    assert bot["status"] == "loaded", bot["error"]


def test_config_show_shows_the_bot_defaults_as_defaults(installed: Installed, empty: Path) -> None:
    result = installed.run("plba", "config", "show", "--json", "--origin", cwd=empty)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    bot = shown["settings"]["mail_order_bot"]
    assert (bot["source"], bot["database"], bot["maildir"], bot["workers"]) == \
        ("maildir", "var/orders.sqlite", "var/mail", 3)
    assert {origin for key, origin in shown["origins"].items() if key.startswith("mail_order_bot.")} == {"default"}
    assert shown["settings"]["platform"]["control"]["port"] == 8080


def test_plba_run_stores_the_sample_orders_and_stops_on_sigint(installed: Installed, empty: Path) -> None:
    # Given an empty directory; the default control port is used unless something else holds it
    # (the machine is shared), in which case the run goes without the control plane.
    args = [] if _free(8080) else ["--no-http"]
    log_path = empty.parent / f"{empty.name}-plba.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([str(installed.venv / "bin" / "plba"), "run", *args], cwd=empty,
                                   env=installed.env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            # When it runs, then the seeded sample mails become three orders and three rejections
            database = empty / "var" / "orders.sqlite"
            wait_for(lambda: process.poll() is not None or
                     (stored(database, "orders") == 3 and stored(database, "rejections") == 3),
                     timeout=60, message="the sample orders")
            assert process.poll() is None, log_path.read_text()
            # And SIGINT stops it cleanly
            process.send_signal(signal.SIGINT)
            assert process.wait(60) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log_path.read_text()
    assert "Traceback" not in output and "unknown key" not in output, output


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
