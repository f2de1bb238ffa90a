"""`plba plugins new`: the generated project installs, passes its own tests, is listed as loaded and runs.

The project is pip-installed into a target directory put on PYTHONPATH (as the other CLI tests
do with their plugin sites), so the test environment itself is never changed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from plba.scaffold import ScaffoldError, check_name, new_plugin
from tests.helpers import PlbaProcess, plba, plba_env

NAME = "tick_demo"


@dataclass
class Installed:
    """A scaffolded project, the site directory it is installed in, and an empty directory to run in."""

    project: Path
    site: Path
    workdir: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A project made by `plba plugins new`, installed with pip (a normal build, as a user would)."""
    root = tmp_path_factory.mktemp("scaffold")
    created = plba("plugins", "new", NAME, "--path", str(root), cwd=root, env=plba_env())
    assert created.returncode == 0, created.stderr
    site = root / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                          str(root / NAME)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    workdir = root / "work"
    workdir.mkdir()
    return Installed(root / NAME, site, workdir)


def test_a_new_plugin_is_a_complete_project(tmp_path: Path) -> None:
    # Given a name, when a plugin project is created
    project = new_plugin("billing", tmp_path)
    # Then it has the package, the entry point, settings, tests and a README, with every placeholder filled
    files = {path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file()}
    assert files == {"pyproject.toml", "README.md", "settings.toml", "billing/__init__.py", "billing/plugin.py",
                     "tests/test_plugin.py"}
    pyproject = (project / "pyproject.toml").read_text()
    assert '[project.entry-points."plba.modules"]\nbilling = "billing.plugin"' in pyproject
    for path in files:
        assert "{{" not in (project / path).read_text(), path
    # And its Python compiles
    for path in [p for p in files if p.endswith(".py")]:
        compile((project / path).read_text(), path, "exec")


def test_new_refuses_to_overwrite_an_existing_directory(tmp_path: Path) -> None:
    # Given a directory already named like the plugin, with a file in it
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "keep.txt").write_text("mine")
    # When `plba plugins new` is asked for that name there
    result = plba("plugins", "new", NAME, "--path", str(tmp_path), cwd=tmp_path, env=plba_env())
    # Then it refuses with exit code 2 and one line, touching nothing
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path / NAME} already exists: choose another name or --path"]
    assert [p.name for p in (tmp_path / NAME).iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("name", ["my-plugin", "class", "2fast", "Billing", "json", "plba", "café"])
def test_new_rejects_a_name_that_cannot_be_a_plugin(tmp_path: Path, name: str) -> None:
    # Given a name that is not a lower-case identifier, is a keyword, or shadows a module
    # When `plba plugins new` is asked for it
    result = plba("plugins", "new", name, "--path", str(tmp_path), cwd=tmp_path, env=plba_env())
    # Then it exits 2 with one line naming it, and creates nothing
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {name!r} is not a valid plugin name")
    assert list(tmp_path.iterdir()) == []


def test_check_name_accepts_a_plain_lower_case_identifier() -> None:
    # Given good names, when they are checked, then nothing is raised; a bad one raises ScaffoldError (exit code 2)
    for name in ("billing", "mail_order_bot", "crm2"):
        check_name(name)
    with pytest.raises(ScaffoldError) as raised:
        check_name("for")
    assert raised.value.exit_code == 2


@pytest.mark.slow
def test_the_generated_tests_pass_once_installed(installed: Installed) -> None:
    # Given plba's pytest plugin is registered, as its wheel does
    pytest_plugins = {ep.value for ep in metadata.entry_points(group="pytest11")}
    assert "plba.testing" in pytest_plugins, "plba.testing is not a pytest11 entry point: reinstall plba"
    # When the installed project's own tests run with pytest
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=installed.project,
                            env=plba_env(installed.site), capture_output=True, text=True, timeout=300)
    # Then they all pass
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


@pytest.mark.slow
def test_the_installed_plugin_is_listed_as_loaded(installed: Installed) -> None:
    # Given the installed project, when plugins are listed
    result = plba("plugins", "list", "--json", cwd=installed.workdir, env=plba_env(installed.site))
    # Then it is there with its distribution, version and three hooks, loaded
    assert result.returncode == 0, result.stderr
    rows = [row for row in json.loads(result.stdout) if row["name"] == NAME]
    assert rows == [{"name": NAME, "distribution": "plba-tick-demo", "version": "0.1.0",
                     "hooks": ["configure", "register_health", "register_workers"], "status": "loaded", "error": None}]


@pytest.mark.slow
def test_the_generated_settings_file_is_valid(installed: Installed) -> None:
    # Given the project's settings.toml, when `plba config check` reads it with the plugin loaded
    env = plba_env(installed.site, PLBA_LOAD_PLUGINS=NAME)
    result = plba("config", "check", "--config", str(installed.project / "settings.toml"), cwd=installed.workdir,
                  env=env)
    # Then it is valid
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


@pytest.mark.slow
def test_the_installed_plugin_runs_and_stops_cleanly_on_sigterm(installed: Installed) -> None:
    # Given the installed plugin greeting every 50 ms
    env = plba_env(installed.site, **{f"PLBA_{NAME.upper()}__INTERVAL": "0.05"})
    process = PlbaProcess("run", "--no-http", "--plugin", NAME, cwd=installed.workdir, env=env)
    try:
        # When it runs, then its worker handles greetings
        process.wait_for_output("runtime started")
        process.wait_for_output("hello #3")
        # And SIGTERM stops it gracefully with exit code 0
        process.signal(signal.SIGTERM)
        assert process.wait() == 0, process.output()
        assert "stopped:" in process.output()
    finally:
        process.kill()
