"""Killing `plba run` mid-batch and starting it again loses no order and doubles none."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until
from mailkit import order_mail

MAILS = 400


def plba_run(tmp_path: Path, config: Path, log_name: str) -> subprocess.Popen:
    """`plba run` for the mail order bot only, from `tmp_path`, logging to a file."""
    env = {**os.environ, "PLBA_LOAD_PLUGINS": "mail_order_bot"}
    log = (tmp_path / log_name).open("wb")
    return subprocess.Popen([sys.executable, "-m", "plba", "run", "--no-http", "--config", str(config)],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)


def count(database: Path, sql: str) -> int:
    """One number from the database, 0 while it does not exist yet."""
    if not database.exists():
        return 0
    with sqlite3.connect(database, timeout=5) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:
            return 0  # tables not created yet


@pytest.mark.slow
def test_killing_the_bot_mid_batch_loses_and_doubles_nothing(folder, tmp_path):
    # Given many order mails waiting and a bot configured for them
    folder.append(*(order_mail([("WID-001", n % 5 + 1)], message_id=f"<crash-{n}@x>") for n in range(MAILS)))
    database = tmp_path / "orders.sqlite"
    imap = folder.settings()
    config = tmp_path / "bot.toml"
    # JSON scalars are valid TOML values for these strings, numbers and booleans.
    config.write_text(
        "[platform.tracing]\ntransport = \"noop\"\n"
        "[mail_order_bot]\nsource = \"imap\"\npoll_interval = 0.2\nworkers = 3\n"
        f"database = {json.dumps(str(database))}\n"
        "[mail_order_bot.imap]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in imap.items()))
    # When the bot is killed (SIGKILL) while it is working through them
    first = plba_run(tmp_path, config, "first.log")
    try:
        wait_until(lambda: count(database, "SELECT COUNT(*) FROM orders") >= 20, timeout=60, message="some orders")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    stored_at_kill = count(database, "SELECT COUNT(*) FROM orders")
    assert stored_at_kill < MAILS, "the batch finished before the kill; raise MAILS"
    # And started again
    second = plba_run(tmp_path, config, "second.log")
    try:
        wait_until(lambda: count(database, "SELECT COUNT(*) FROM orders") == MAILS, timeout=120, message="all orders")
        wait_until(lambda: not folder.unseen(), message="every mail seen")
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(30)
    # Then every mail is exactly one order with exactly its one line, and the restart stopped cleanly
    assert count(database, "SELECT COUNT(DISTINCT message_id) FROM orders") == MAILS
    assert count(database, "SELECT COUNT(*) FROM order_lines") == MAILS
    assert count(database, "SELECT COUNT(*) FROM rejections") == 0
    assert code == 0, (tmp_path / "second.log").read_text()
