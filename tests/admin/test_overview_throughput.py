"""The overview's throughput chart over real HTTP: drawn from `/status`'s per-minute counts."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from http.cookiejar import CookieJar

from tests.admin.conftest import PASSWORD, console_settings, csrf_of
from tests.control.conftest import JobsPlugin
from tests.helpers import wait_for


def test_the_overview_charts_the_tasks_of_the_last_hour_from_the_status(serve, accounts) -> None:
    plugin = JobsPlugin(tasks=6)
    runtime, client = serve(plugin, settings=console_settings())
    wait_for(lambda: sum(m["processed"] for m in client.get("/status").body["throughput"]) == 6,
             message="6 tasks counted in /status")
    status = client.get("/status").body
    assert len(status["throughput"]) == 60
    counted = [m for m in status["throughput"] if m["processed"]]

    base = f"http://127.0.0.1:{runtime.control.port}"
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    token = csrf_of(browser.open(f"{base}/admin/login", timeout=10).read().decode())
    form = urllib.parse.urlencode({"username": "viewer", "password": PASSWORD, "csrf_token": token}).encode()
    browser.open(f"{base}/admin/login", data=form, timeout=10).read()
    with browser.open(f"{base}/admin/", timeout=10) as answer:
        page = answer.read().decode()

    chart = re.search(r'<svg class="chart".*?</svg>', page, re.S).group(0)
    titles = re.findall(r"<title>(\d\d:\d\d) UTC: (\d+) processed, (\d+) failed</title>", chart)
    assert len(titles) == 60
    assert sum(int(processed) for _, processed, _ in titles) == 6
    assert [int(p) for _, p, _ in titles if int(p)] == [m["processed"] for m in counted]
    # The page was drawn a moment after the status was read: in its last minute, or the next one.
    last = status["throughput"][-1]["minute"]
    assert titles[-1][0] in {datetime.fromtimestamp(last + step, UTC).strftime("%H:%M") for step in (0, 60)}
