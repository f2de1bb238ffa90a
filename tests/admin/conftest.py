"""Fixtures for the console tests: a served runtime with the console on, users of each role, a test client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from plba import Task
from plba.db import open_database
from plba.users import Accounts
from tests.control.conftest import JobsPlugin, control_settings, isolated, serve  # noqa: F401 - fixtures
from tests.helpers import wait_for
from tests.users.conftest import quick_passwords

PASSWORD = "correct horse battery"
XSS = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'


def fail_with_markup(task: Task) -> None:
    """A handler whose error carries markup, as an attacker-controlled task error would."""
    raise ValueError(f"bad order {XSS}")


def console_settings(**admin: Any) -> dict[str, Any]:
    """Control settings with the console enabled."""
    settings = control_settings()
    settings["platform"]["admin"] = {"enabled": True, **admin}
    return settings


@pytest.fixture
def accounts(isolated) -> Accounts:  # noqa: F811
    """One user per role on the served runtime's platform database."""
    found = Accounts(open_database("var/plba.sqlite"), passwords=quick_passwords())
    for role in ("viewer", "operator", "admin"):
        found.users.add(role, role, PASSWORD)
    return found


@pytest.fixture
def console(serve, accounts) -> Iterator[Any]:  # noqa: F811
    """A runtime with the console, a `jobs` queue holding 3 dead tasks whose errors carry markup."""
    plugin = JobsPlugin(fail_with_markup, tasks=3, max_attempts=1)
    runtime, _ = serve(plugin, settings=console_settings())
    wait_for(lambda: plugin.queue.stats()["dead"] == 3, message="3 dead tasks")
    yield runtime


def csrf_of(html: str) -> str:
    """The CSRF token in a rendered page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client: Any, name: str, password: str = PASSWORD) -> Any:
    """Log `client` in as `name`; returns the answer to the login POST."""
    token = csrf_of(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"username": name, "password": password, "csrf_token": token})
