"""Wheels of plba and the mail order bot, built as for PyPI and installed into a fresh venv, work there.

The wheels are built from a copy of the sources (so no `build/` is left in the checkout), with
build isolation: the build backend comes from the index, as for anyone running `python -m build`.
The venv is a plain one, so it cannot see the editable checkout; pip fetches the dependencies.
"""

from __future__ import annotations

import json
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.packaging import Installed

pytestmark = pytest.mark.slow


def metadata_of(wheel: Path) -> tuple[list[str], dict[str, str], str]:
    """The file names in `wheel`, its METADATA headers, and its entry_points.txt."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(archive.read(f"{info}/METADATA").decode(), headersonly=True)
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    return names, dict(headers.items()), entry_points


def test_the_plba_wheel_ships_its_typing_marker_templates_and_metadata(installed: Installed) -> None:
    # Given the plba wheel, when its contents are read
    names, headers, entry_points = metadata_of(installed.plba_wheel)
    # Then it is typed, carries the plugin template, and declares its version and Python
    assert "plba/py.typed" in names
    assert "plba/scaffold/template/pyproject.toml.tmpl" in names
    assert "plba/scaffold/template/{{name}}/plugin.py.tmpl" in names
    assert headers["Version"] == "0.1.0"
    assert headers["Requires-Python"] == ">=3.11"
    # And it installs the `plba` command and the pytest plugin
    assert "plba = plba.cli:app" in entry_points
    assert "[pytest11]\nplba = plba.testing" in entry_points


def test_the_bot_wheel_declares_its_entry_point_and_metadata(installed: Installed) -> None:
    # Given the mail order bot's wheel, when its metadata is read
    _names, headers, entry_points = metadata_of(installed.need_bot())
    # Then it is found by plba through its entry point, with a version and a Python requirement
    assert "[plba.modules]\nmail_order_bot = mail_order_bot.plugin" in entry_points
    assert headers["Name"] == "mail-order-bot-plugin"
    assert headers["Version"]
    assert headers["Requires-Python"]


def test_plba_runs_from_the_venv_not_the_checkout(installed: Installed) -> None:
    # Given the venv, when plba is imported and asked its version there
    where = installed.run("python", "-c", "import plba; print(plba.__file__)")
    version = installed.run("plba", "--version")
    # Then it is the installed copy, and it prints the wheel's version
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout + where.stderr
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "plba 0.1.0"


def test_the_installed_bot_is_listed_as_loaded(installed: Installed) -> None:
    # Given both wheels installed, when the plugins are listed
    installed.need_bot()
    result = installed.run("plba", "plugins", "list", "--json")
    # Then the bot is there, loaded, with its three hooks
    assert result.returncode == 0, result.stderr
    (bot,) = [row for row in json.loads(result.stdout) if row["name"] == "mail_order_bot"]
    assert bot["status"] == "loaded", bot["error"]
    assert bot["distribution"] == "mail-order-bot-plugin"
    assert {"configure", "register_workers", "register_health"} <= set(bot["hooks"])


def test_plugins_new_works_from_the_installed_wheel(installed: Installed) -> None:
    # Given the venv, when a plugin project is created with its plba
    result = installed.run("plba", "plugins", "new", "shipped", "--path", str(installed.workdir))
    # Then the template files came with the wheel
    assert result.returncode == 0, result.stderr
    assert (installed.workdir / "shipped" / "shipped" / "plugin.py").is_file()
