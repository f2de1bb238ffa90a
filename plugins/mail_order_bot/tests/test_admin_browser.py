"""The operator's retry in Debian's Chromium, driven by Playwright, against real `plba run`s of the bot."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until
from mailkit import order_mail
from tests.admin.conftest import PASSWORD
from tests.admin.test_browser import (  # noqa: F401 - fixtures, skip mark
    IMAGES,
    browser,
    count_after_reload,
    log_in,
    page,
    pytestmark,
)
from tests.helpers import PlbaProcess, plba_env

from mail_order_bot.catalogue import sample_catalogue_text
from mail_order_bot.mailboxes import MaildirMailbox

XSS = '<script>window.xss=1</script><img src=x onerror="window.xss=2">'
SETTINGS = """\
[platform.control]
port = 0
[platform.admin]
enabled = true
[platform.tracing]
transport = "noop"
[mail_order_bot]
maildir = "mail"
database = "orders.sqlite"
catalogue = "catalogue.csv"
poll_interval = 0.2
"""


def rows(home: Path, sql: str) -> list[tuple]:
    """Rows from the bot's database, none while it does not exist yet."""
    if not (home / "orders.sqlite").exists():
        return []
    with sqlite3.connect(home / "orders.sqlite", timeout=5) as conn:
        return conn.execute(sql).fetchall()


def plba_run(home: Path) -> tuple[PlbaProcess, str]:
    """`plba run` of the bot alone in `home`, once its control plane listens; with its URL."""
    process = PlbaProcess("run", cwd=home, env=plba_env(PLBA_LOAD_PLUGINS="mail_order_bot"))
    process.wait_for_output("control plane listening on")
    return process, re.search(r"control plane listening on (http://\S+)", process.output()).group(1)


def stop(process: PlbaProcess) -> None:
    """SIGTERM, and a clean exit."""
    process.signal(signal.SIGTERM)
    try:
        assert process.wait(30) == 0, process.output()
    finally:
        process.kill()


@pytest.fixture
def fixed(tmp_path: Path) -> Iterator[str]:
    """A bot that rejected an order for a SKU missing from its catalogue, then restarted with the SKU added."""
    home = tmp_path
    (home / "settings.toml").write_text(SETTINGS)
    (home / "catalogue.csv").write_text(sample_catalogue_text())
    added = subprocess.run([sys.executable, "-m", "plba", "users", "add", "operator", "--role", "operator",
                            "--password-stdin"], cwd=home, env=plba_env(), input=f"{PASSWORD}\n", text=True,
                           capture_output=True, timeout=60)
    assert added.returncode == 0, added.stderr
    box = MaildirMailbox(home / "mail")
    box.create()
    box.deliver(order_mail([("NEW-1", 3)], message_id="<new-sku@acme.example>", subject=f"Order {XSS}"))
    box.deliver(order_mail(kind="none", message_id="<no-file@acme.example>", subject="Order for next week",
                           sender="Bob Buyer <bob@bolts.example>"))
    first, _ = plba_run(home)
    try:
        wait_until(lambda: len(rows(home, "SELECT * FROM rejections")) == 2 and not box.unseen(),
                   message="both rejections")
    finally:
        stop(first)
    with (home / "catalogue.csv").open("a") as catalogue:
        catalogue.write("NEW-1,New widget,3.10\n")
    second, url = plba_run(home)
    try:
        yield url
    finally:
        stop(second)


def test_an_operator_retries_a_rejection_fixed_in_the_catalogue(page: Any, fixed: str, tmp_path: Path) -> None:  # noqa: F811
    url = fixed
    log_in(page, url, "operator")
    page.goto(f"{url}/admin/plugins/mail_order_bot/rejections")
    row = page.locator("tr.rejection", has_text="<new-sku@acme.example>")
    # The subject's markup is text on the page, and none of it ran
    assert row.locator("td.subject").inner_text() == f"Order {XSS}"
    assert "unknown SKU 'NEW-1'" in row.locator("td.reason").inner_text()
    assert page.evaluate("window.xss") is None
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "rejections.png"), full_page=True)
    # Retry: the rejection goes, the mail is back in the inbox and the bot makes it an order
    row.locator("button.retry-rejection").click()
    assert "<new-sku@acme.example>: its mail is back in the inbox, unseen" in page.locator(".flash.ok").inner_text()
    assert page.locator("tr.rejection", has_text="<new-sku@acme.example>").count() == 0
    assert page.locator("tr.rejection", has_text="<no-file@acme.example>").count() == 1
    page.goto(f"{url}/admin/plugins/mail_order_bot/orders")
    wait_until(lambda: count_after_reload(page, "tr.order", has_text="<new-sku@acme.example>") == 1,
               message="the order on the Orders page")
    assert "3 × NEW-1 at 3.10" in page.locator("tr.order").first.inner_text()
    assert rows(tmp_path, "SELECT message_id FROM rejections") == [("<no-file@acme.example>",)]
    assert page.evaluate("window.xss") is None
