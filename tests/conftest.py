"""Fixtures for the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PlbaProcess, plba_env, write_distribution
from tests.packaging import Installed, install_both

# The PostgreSQL fixtures, for every test directory (imported, so pytest registers them here).
from tests.postgres.fixtures import database_url, own_postgres, postgres_server  # noqa: F401

WORKING_PLUGIN = '''
import sys

from plba import QueueWorker, Task, hookimpl
from plba.contracts import WorkerHealth

HANDLED = []


def handle(task):
    HANDLED.append(task.payload)
    # One write per line, so lines from threads never interleave in the captured output.
    sys.stdout.write(f"handled {task.payload}\\n")
    sys.stdout.flush()


@hookimpl
def configure(settings):
    from dynaconf import Validator

    settings.validators.register(Validator("acme.jobs", default=3, is_type_of=int, gte=0))


@hookimpl
def register_workers(registry):
    queue = registry.queue("acme")
    for n in range(registry.settings.get("acme.jobs", 3)):
        queue.publish(Task("job", {"n": n}))
    registry.add_worker(QueueWorker("acme-worker", queue, handle, registry.services.get("traces"), concurrency=2))


@hookimpl
def register_health(registry):
    registry.add_health("acme-check", lambda: WorkerHealth("ok", "fine"))
'''

BROKEN_PLUGIN = '''
raise ImportError("the acme_broken plugin needs a module that is not installed")
'''


@pytest.fixture
def plugin_site(tmp_path: Path) -> Path:
    """A site directory with two installed plugin distributions: one working, one broken on import."""
    site = tmp_path / "site"
    write_distribution(site, "acme-plugin", "1.2.3", {"acme": "acme_plugin"}, {"acme_plugin": WORKING_PLUGIN})
    write_distribution(site, "acme-broken", "0.0.1", {"broken": "acme_broken"}, {"acme_broken": BROKEN_PLUGIN})
    return site


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project directory to run `plba` in (no settings.toml unless a test writes one)."""
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def env(plugin_site: Path) -> dict[str, str]:
    """Environment for `plba` subprocesses that sees the test plugins, with the control plane off."""
    return plba_env(plugin_site, PLBA_PLATFORM__CONTROL__ENABLED="false")


@pytest.fixture
def running(project: Path, env: dict[str, str]) -> Iterator[list[PlbaProcess]]:
    """Collects `plba run` processes a test starts and kills any left running."""
    started: list[PlbaProcess] = []
    yield started
    for process in started:
        process.kill()


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Both wheels built and installed into a fresh plain venv, once for the whole session."""
    return install_both(tmp_path_factory.mktemp("packaging"))
