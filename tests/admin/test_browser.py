"""The operator's story in Debian's Chromium, driven by Playwright, against a real `plba run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_api
import pytest

from tests.admin.conftest import PASSWORD, XSS
from tests.helpers import PlbaProcess, plba_env, wait_for, write_distribution

CHROMIUM = Path("/usr/bin/chromium")
# Outside CI a machine without Debian's chromium skips; in CI (which installs it) a missing browser fails.
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="needs Debian's chromium (apt-get install chromium)")
# The screenshots in docs/images are refreshed on request (PLBA_UPDATE_SCREENSHOTS=1), so a test run
# leaves the tree clean; otherwise they go to a temporary folder.
IMAGES = (Path(__file__).resolve().parents[2] / "docs" / "images" if os.environ.get("PLBA_UPDATE_SCREENSHOTS")
          else Path(tempfile.gettempdir()) / "plba-screenshots")

FLAKY = '''
from pathlib import Path
from plba import QueueWorker, Task, hookimpl

XSS = {xss!r}

def handle(task):
    if Path("fail").exists():
        raise ValueError("bad order " + XSS)

@hookimpl
def register_workers(registry):
    queue = registry.queue("jobs")
    for n in range(3):
        queue.publish(Task("job", {{"n": n, "note": XSS}}))
    registry.add_worker(QueueWorker("jobs-worker", queue, handle, max_attempts=1, poll_timeout=0.05))
'''


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per module (each test gets its own context); the bot's browser tests import this fixture.

    Module scope: a second sync Playwright cannot start while another runs, so one must end first.
    """
    engine = playwright_api.sync_playwright().start()
    chromium = engine.chromium.launch(executable_path=str(CHROMIUM),
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    yield chromium
    chromium.close()
    engine.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context and page; fails the test on any script error in the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`plba run` with the console, a `jobs` queue whose 3 tasks die while ./fail exists, and users per role."""
    home = tmp_path_factory.mktemp("console")
    site = write_distribution(home / "site", "flaky-plugin", "0.1", {"flaky": "flaky_plugin"},
                              {"flaky_plugin": FLAKY.format(xss=XSS)})
    (home / "fail").write_text("")
    (home / "settings.toml").write_text('[platform.control]\nport = 0\n[platform.admin]\nenabled = true\n'
                                        '[platform.tracing]\ntransport = "noop"\n')
    env = plba_env(site, PLBA_LOAD_PLUGINS="flaky")
    for name, role in (("admin", "admin"), ("operator", "operator"), ("viewer", "viewer")):
        added = subprocess.run([sys.executable, "-m", "plba", "users", "add", name, "--role", role,
                                "--password-stdin"], cwd=home, env=env, input=f"{PASSWORD}\n", text=True,
                               capture_output=True, timeout=60)
        assert added.returncode == 0, added.stderr
    process = PlbaProcess("run", cwd=home, env=env)
    try:
        process.wait_for_output("control plane listening on")
        url = re.search(r"control plane listening on (http://\S+)", process.output()).group(1)
        yield url, home
    finally:
        process.signal(signal.SIGTERM)
        try:
            assert process.wait(30) == 0, process.output()
        finally:
            process.kill()


def count_after_reload(page: Any, selector: str, **options: Any) -> int:
    """Reload the page, then count what `selector` matches (`page.reload() or ...` would stop at its response)."""
    page.reload()
    return page.locator(selector, **options).count()


def log_in(page: Any, url: str, name: str) -> None:
    """Log in through the form."""
    page.goto(f"{url}/admin/")
    assert "/admin/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/admin/")


def test_an_operator_logs_in_retries_dead_tasks_and_watches_the_overview(page: Any, served) -> None:
    url, home = served
    log_in(page, url, "operator")
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.goto(f"{url}/admin/queues/jobs")
    page.wait_for_selector("tr.dead-task")
    wait_for(lambda: count_after_reload(page, "tr.dead-task") == 3, message="3 dead tasks")
    # The attacker's markup is text on the page and never ran.
    assert XSS in page.locator("td.task-error").first.inner_text()
    assert page.title() != "owned"
    page.screenshot(path=str(IMAGES / "dead-letters.png"), full_page=True)
    page.goto(f"{url}/admin/")
    processed = page.locator("#processed").inner_text()
    (home / "fail").unlink()
    page.goto(f"{url}/admin/queues/jobs")
    page.check("input[name=confirm_all]")
    page.click("#retry-all")
    assert "3 task(s) moved back to jobs" in page.locator(".flash.ok").inner_text()
    page.goto(f"{url}/admin/")
    # The live part refreshes itself: no reload from here on.
    page.wait_for_function(f"document.getElementById('processed').textContent.trim() !== '{processed}'",
                           timeout=20_000)
    page.screenshot(path=str(IMAGES / "overview.png"), full_page=True)
    page.goto(f"{url}/admin/audit?actor=operator")
    assert "queues.requeue" in page.locator("tr.audit-event").first.inner_text()
    page.screenshot(path=str(IMAGES / "audit.png"), full_page=True)


def test_a_viewer_sees_no_buttons_and_a_crafted_post_is_refused(page: Any, served) -> None:
    url, _ = served
    log_in(page, url, "viewer")
    page.goto(f"{url}/admin/queues")
    assert page.locator("button", has_text="Pause").count() == 0
    page.goto(f"{url}/admin/queues/jobs")
    assert page.locator("#retry-all, .retry-one, button.danger").count() == 0
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{url}/admin/queues/jobs/retry", form={"all": "1", "csrf_token": token})
    assert answer.status == 403


def test_logging_out_closes_the_pages_even_to_a_copy_of_the_cookie(browser: Any, page: Any, served) -> None:
    url, _ = served
    log_in(page, url, "admin")
    copied = page.context.cookies()
    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/admin/login.*"))
    for path in ("/admin/", "/admin/queues/jobs", "/admin/audit"):
        page.goto(f"{url}{path}")
        assert "/admin/login" in page.url
    answer = page.request.post(f"{url}/admin/queues/jobs/retry", form={"all": "1"})
    assert answer.status == 401
    # The session ended on the server: a cookie copied before the logout opens nothing either.
    thief = browser.new_context()
    try:
        thief.add_cookies(copied)
        stolen = thief.new_page()
        stolen.goto(f"{url}/admin/users")
        assert "/admin/login" in stolen.url
    finally:
        thief.close()


def test_an_admin_adds_a_user_creates_a_token_sees_it_once_and_revokes_it(page: Any, served) -> None:
    url, _ = served
    log_in(page, url, "admin")
    page.click("header nav >> text=Users")
    page.wait_for_url(f"{url}/admin/users")
    # Add a user, the password typed twice
    form = page.locator("#add-user")
    form.locator("input[name=name]").fill("dana")
    form.locator("select[name=role]").select_option("operator")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=password2]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    assert page.locator(".flash.ok").inner_text() == "added user dana (operator)"
    dana = page.locator("tr.user[data-user=dana]")
    assert dana.locator("td.role").inner_text() == "operator"
    # Create her a token expiring in 30 days: it is on this page, once
    dana.locator("input[name=expires_days]").fill("30")
    dana.locator("button.create-token").click()
    secret = page.locator("#token-value").inner_text().strip()
    assert secret.startswith("plba_")
    assert secret not in page.locator(".flash.ok").inner_text()
    assert page.request.get(f"{url}/status", headers={"Authorization": f"Bearer {secret}"}).status == 200
    page.goto(f"{url}/admin/users")
    assert page.locator("#token-value").count() == 0 and secret not in page.content()
    assert page.locator("tr.user[data-user=dana] td.active-tokens").inner_text() == "1"
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "users.png"), full_page=True)
    # Revoke it: the control plane refuses it from then on
    page.locator("tr.token.state-active", has_text="dana").locator("button.revoke").click()
    assert page.locator(".flash.ok").inner_text().startswith("revoked token ")
    assert page.locator("tr.token", has_text="dana").locator("td.state").inner_text().startswith("revoked")
    assert page.request.get(f"{url}/status", headers={"Authorization": f"Bearer {secret}"}).status == 401


def test_a_viewer_has_no_users_menu_and_a_crafted_users_post_is_refused(page: Any, served) -> None:
    url, _ = served
    log_in(page, url, "viewer")
    assert page.locator("header nav a", has_text="Users").count() == 0
    assert page.goto(f"{url}/admin/users").status == 403
    page.goto(f"{url}/admin/")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{url}/admin/users/add", form={
        "name": "mallory", "role": "admin", "password": PASSWORD, "password2": PASSWORD, "csrf_token": token})
    assert answer.status == 403
    answer = page.request.post(f"{url}/admin/users/admin/remove", form={"confirm": "admin", "csrf_token": token})
    assert answer.status == 403
