"""The README's first command: `plba run` with the committed settings stores the sample orders.

It runs the mail order bot on its zero-setup default, a local Maildir seeded with sample mails.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import urllib.request
from pathlib import Path

from tests.helpers import REPO, PlbaProcess, plba_env, wait_for


def stored(database: Path, table: str) -> int:
    """Rows in `table`, or 0 while the database or its tables do not exist yet."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(database) as connection:
            return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # the bot creates the schema just after the file
        return 0


def test_plba_run_with_the_committed_settings_stores_the_sample_orders(tmp_path: Path) -> None:
    # Given a fresh directory holding only the repository's settings files
    for name in ("settings.toml", ".secrets.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    # (the control plane on a free port, so the test never collides with a real 8080)
    env = plba_env(PLBA_PLATFORM__CONTROL__PORT="0")
    process = PlbaProcess("run", cwd=tmp_path, env=env)
    try:
        # When `plba run` starts
        process.wait_for_output("control plane listening on")
        url = re.search(r"control plane listening on (http://\S+)", process.output()).group(1)
        database = tmp_path / "var" / "orders.sqlite"
        # Then the seeded sample mails become three orders and three rejections
        wait_for(lambda: stored(database, "orders") == 3 and stored(database, "rejections") == 3,
                 timeout=30, message="the sample orders")
        # And the control plane reports the bot's workers, its poll schedule and a healthy runtime
        status = json.load(urllib.request.urlopen(f"{url}/status", timeout=10))
        assert {w["name"] for w in status["workers"]} == {"plba.scheduler", "mail_order_bot.workers"}
        schedules = json.load(urllib.request.urlopen(f"{url}/schedules", timeout=10))["schedules"]
        assert [(s["name"], s["every"]) for s in schedules] == [("mail_order_bot.poll", 5.0)]
        assert json.load(urllib.request.urlopen(f"{url}/health", timeout=10))["status"] == "ok"
        # And SIGTERM stops it cleanly
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    finally:
        process.kill()
    assert "Traceback" not in process.output()
