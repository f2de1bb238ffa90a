"""The README's plugin example works as printed: installed as a distribution, listed and run."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from tests.helpers import REPO, PlbaProcess, plba, plba_env, write_distribution


def readme_block(language: str, containing: str) -> str:
    """The first fenced block of `language` in README.md that contains `containing`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    return next(block for block in blocks if containing in block)


def test_the_readme_plugin_example_is_listed_and_runs(tmp_path: Path) -> None:
    # Given the README's plugin module and entry point, installed as a distribution
    source = readme_block("python", "@hookimpl")
    entry = readme_block("toml", "plba.modules")
    name, target = re.search(r'^(\w+) = "([\w.:]+)"$', entry, re.MULTILINE).groups()
    package = tmp_path / "site" / target.split(".")[0]
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(source)
    site = write_distribution(tmp_path / "site", "acme-reports", "1.0", {name: target}, {})
    env = plba_env(site, PLBA_PLATFORM__CONTROL__ENABLED="false")
    project = tmp_path / "project"
    project.mkdir()
    # When it is listed
    rows = json.loads(plba("plugins", "list", "--json", cwd=project, env=env).stdout)
    # Then it loads with its three hooks
    mine = [row for row in rows if row["name"] == name]
    assert mine == [{"name": "acme_reports", "distribution": "acme-reports", "version": "1.0",
                     "hooks": ["configure", "register_health", "register_workers"], "status": "loaded",
                     "error": None}]
    # And when run, it builds its report and stops cleanly on SIGTERM
    process = PlbaProcess("run", "--plugin", name, cwd=project, env=env)
    try:
        process.wait_for_output("building report 2026-11")
        process.wait_for_output("runtime started")
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    finally:
        process.kill()
