"""Plugin discovery through real entry points, and `plba plugins list`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import plba, plba_env, write_distribution


def listed(project: Path, env: dict[str, str]) -> dict[str, dict]:
    result = plba("plugins", "list", "--json", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_plugins_list_reports_working_and_broken_plugins_with_their_distribution(project, env) -> None:
    # Given one working and one broken plugin installed
    rows = listed(project, env)
    # Then both are listed with the keys of DESIGN.md, and the broken one does not hide the other
    assert rows["acme"] == {"name": "acme", "distribution": "acme-plugin", "version": "1.2.3",
                            "hooks": ["configure", "register_health", "register_workers"],
                            "status": "loaded", "error": None}
    assert rows["broken"]["status"] == "failed" and rows["broken"]["distribution"] == "acme-broken"
    assert rows["broken"]["error"] == "ImportError: the acme_broken plugin needs a module that is not installed"
    assert rows["broken"]["hooks"] == []


def test_the_selection_variable_loads_all_none_or_the_named_plugins(project, env) -> None:
    assert {r["status"] for r in listed(project, {**env, "PLBA_LOAD_PLUGINS": ""}).values()} == {"disabled"}
    # (other installed plugins, such as the mail order bot, are listed too and disabled alike)
    only = listed(project, {**env, "PLBA_LOAD_PLUGINS": "acme"})
    assert only["acme"]["status"] == "loaded" and only["broken"]["status"] == "disabled"
    assert listed(project, env)["broken"]["status"] == "failed"


def test_a_plugin_with_a_misspelled_hook_is_reported_not_fatal(project, tmp_path) -> None:
    site = write_distribution(tmp_path / "typo-site", "typo-plugin", "2.0", {"typo": "typo_plugin"}, {
        "typo_plugin": "from plba import hookimpl\n\n@hookimpl\ndef register_worker(registry):\n    pass\n"})
    rows = listed(project, plba_env(site))
    assert rows["typo"]["status"] == "failed" and "register_worker" in rows["typo"]["error"]


def test_a_class_style_module_entry_point_is_adapted_to_the_hooks(project, tmp_path) -> None:
    source = '''
from plba import ApplicationModule


class Reports(ApplicationModule):
    name = "reports"

    def register(self, registry):
        pass
'''
    site = write_distribution(tmp_path / "cls-site", "reports-plugin", "0.3", {"reports": "reports_mod:Reports"},
                              {"reports_mod": source})
    rows = listed(project, plba_env(site))
    assert rows["reports"]["status"] == "loaded"
    assert rows["reports"]["hooks"] == ["configure", "register_health", "register_routes", "register_workers"]


def test_plugins_list_prints_a_table_for_people(project, env) -> None:
    result = plba("plugins", "list", cwd=project, env={**env, "COLUMNS": "200"})
    assert result.returncode == 0
    assert "acme-plugin" in result.stdout and "failed" in result.stdout and "loaded" in result.stdout
