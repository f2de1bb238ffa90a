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


WRAPPER_PLUGIN = '''
from plba import hookimpl

CALLS = []


@hookimpl(wrapper=True)
def configure(settings):
    CALLS.append("before")
    return (yield)
'''

OLD_STYLE_WRAPPER_PLUGIN = '''
from plba import hookimpl


@hookimpl(hookwrapper=True)
def register_workers(registry):
    yield
'''

MISMATCHED_PLUGIN = '''
from plba import hookimpl


@hookimpl
def register_workers(registry, scheduler):
    pass
'''


def one_plugin_site(tmp_path: Path, source: str) -> Path:
    """A site with one plugin distribution, `odd-plugin` 4.5 with entry point `odd`, whose module is `source`."""
    return write_distribution(tmp_path / "odd-site", "odd-plugin", "4.5", {"odd": "odd_plugin"}, {"odd_plugin": source})


def test_a_hook_wrapper_is_refused_at_load_naming_the_plugin(project, tmp_path) -> None:
    # Given a plugin whose configure is a new-style hook wrapper, which PLBA could never run
    env = plba_env(one_plugin_site(tmp_path, WRAPPER_PLUGIN))
    # When plugins are listed
    row = listed(project, env)["odd"]
    # Then it is failed, saying why, instead of listed as loaded
    assert row["status"] == "failed"
    assert row["error"] == ("hook configure is declared wrapper=True, which PLBA does not support "
                            "(it calls each plugin's configure on its own): use a plain @hookimpl")
    # And `plba run` refuses it with one line and exit code 3
    result = plba("run", "--plugin", "odd", "--no-http", cwd=project, env=env)
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"error: plugin 'odd' (odd-plugin 4.5) is broken: {row['error']} "
        "(deselect it with --plugin or PLBA_LOAD_PLUGINS)"]


def test_an_old_style_hookwrapper_is_refused_too(project, tmp_path) -> None:
    row = listed(project, plba_env(one_plugin_site(tmp_path, OLD_STYLE_WRAPPER_PLUGIN)))["odd"]
    assert row["status"] == "failed" and "register_workers is declared hookwrapper=True" in row["error"]


def test_a_hook_whose_arguments_do_not_match_is_one_line_naming_plugin_distribution_and_argument(
        project, tmp_path) -> None:
    # Given a plugin whose register_workers asks for an argument the hook does not pass
    env = plba_env(one_plugin_site(tmp_path, MISMATCHED_PLUGIN))
    # When it is run
    result = plba("run", "--plugin", "odd", "--no-http", cwd=project, env=env)
    # Then exactly one line names the plugin, its distribution and version, and the argument
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "error: plugin 'odd' (odd-plugin 4.5) is broken: hook register_workers(registry, scheduler) asks for "
        "'scheduler', which register_workers does not pass (it passes registry) "
        "(deselect it with --plugin or PLBA_LOAD_PLUGINS)"]


def test_a_misspelled_hook_suggests_the_nearest_hook(project, tmp_path) -> None:
    source = "from plba import hookimpl\n\n@hookimpl\ndef register_healht(registry):\n    pass\n"
    row = listed(project, plba_env(one_plugin_site(tmp_path, source)))["odd"]
    assert row["error"] == "unknown hook 'register_healht' (did you mean 'register_health'?)"
