"""`plba config show|check` and `--plugin` as a user types them; `plba run` refusing bad settings in one line."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plba.cli import app
from tests.helpers import PlbaProcess, plba


@pytest.fixture
def cli(project: Path, plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """`plba` in-process, in an empty project, seeing the test plugins, with no PLBA_ variables."""
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(plugin_site))
    for name in [name for name in __import__("os").environ if name.startswith("PLBA_")]:
        monkeypatch.delenv(name)
    return CliRunner()


def test_config_show_includes_plugin_defaults_with_their_origin(cli: CliRunner, project: Path) -> None:
    # Given no settings file and the acme plugin, which declares acme.jobs with a default of 3
    (project / "extra.toml").write_text("[platform.control]\nport = 9100\n")
    # When the effective settings are shown with their origins
    result = cli.invoke(app, ["config", "show", "--json", "--origin", "--plugin", "acme", "-c", "extra.toml"],
                        env={"PLBA_LOG__LEVEL": "debug"})
    # Then the plugin's default is there, and each key names its layer
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["settings"]["acme"] == {"jobs": 3}
    assert shown["origins"]["acme.jobs"] == "default"
    assert shown["origins"]["platform.control.port"] == "extra.toml"
    assert shown["origins"]["log.level"] == "env PLBA_LOG__LEVEL"
    assert shown["settings"]["log"]["level"] == "DEBUG"


def test_config_show_lists_keys_with_origins_and_masks_url_passwords(cli: CliRunner, project: Path) -> None:
    (project / "settings.toml").write_text('[platform.queues.orders]\nbackend = "redis"\n'
                                           'url = "redis://:hunter2@127.0.0.1:1/0"\n')
    result = cli.invoke(app, ["config", "show", "--origin", "--plugin", "acme"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith('platform.queues.orders.url = "redis://:********@127.0.0.1:1/0"')
               and line.endswith("# settings.toml") for line in lines), result.stdout
    assert any(line.startswith("acme.jobs = 3 ") and line.endswith("# default") for line in lines)


def test_config_check_warns_about_a_typo_and_strict_refuses_it(cli: CliRunner, project: Path) -> None:
    (project / "settings.toml").write_text("[platform.control]\nprot = 9000\n[acme]\njbos = 2\n")
    relaxed = cli.invoke(app, ["config", "check", "--plugin", "acme"])
    assert relaxed.exit_code == 0, relaxed.output
    assert relaxed.stderr.splitlines() == [
        "warning: unknown key acme.jbos in settings.toml (did you mean acme.jobs?)",
        "warning: unknown key platform.control.prot in settings.toml (did you mean platform.control.port?)",
    ]
    assert relaxed.stdout.startswith("configuration is valid")
    strict = cli.invoke(app, ["config", "check", "--strict", "--plugin", "acme"])
    assert strict.exit_code == 2 and "configuration is valid" not in strict.stdout
    assert len(strict.stderr.splitlines()) == 2 and strict.stderr.startswith("error: unknown key")


@pytest.mark.parametrize("command", [["config", "show"], ["config", "check"], ["plugins", "list"]])
def test_an_unknown_plugin_name_is_an_error_listing_the_installed_ones(cli: CliRunner, command: list[str]) -> None:
    result = cli.invoke(app, [*command, "--plugin", "acme", "--plugin", "nope"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: plugin 'nope' is not installed (installed: ")
    assert "acme" in line and "broken" in line


def test_plugins_list_with_plugin_loads_only_that_one(cli: CliRunner) -> None:
    result = cli.invoke(app, ["plugins", "list", "--json", "--plugin", "acme"])
    statuses = {row["name"]: row["status"] for row in json.loads(result.stdout)}
    assert statuses["acme"] == "loaded" and statuses["broken"] == "disabled"


@pytest.mark.parametrize(("files", "expected"), [
    ({"settings.toml/": ""}, "error: settings.toml: cannot be read: is a directory"),
    ({"settings.toml": "platform = 5\n"}, "error: platform must be a table (it is 5) in settings.toml"),
    ({"settings.toml": "[acme]\njobs = -1\n"}, "error: acme.jobs must be at least 0 (it is -1) in settings.toml"),
    ({"settings.toml": "[acme]\njobs = 'many'\n"},
     "error: acme.jobs must be an integer (it is 'many') in settings.toml"),
    ({"settings.local.toml": "[log]\nlevel = 'loud'\n"},
     "error: log.level must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL' (it is 'LOUD') "
     "in settings.local.toml"),
    ({"settings.toml": "[platform\n"}, "error: settings.toml: cannot be parsed: "
                                       "Expected ']' at the end of a table declaration (at line 1, column 10)"),
])
def test_config_check_refuses_bad_settings_in_one_line(cli: CliRunner, project: Path, files: dict[str, str],
                                                       expected: str) -> None:
    for name, text in files.items():
        if name.endswith("/"):
            (project / name).mkdir()
        else:
            (project / name).write_text(text)
    result = cli.invoke(app, ["config", "check", "--plugin", "acme"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [expected]
    assert "configuration is valid" not in result.stdout


# -- plba run, as a service manager starts it ---------------------------------------------


@pytest.mark.parametrize(("settings", "extra_env", "expected"), [
    (None, {}, "error: settings.toml: cannot be read: is a directory"),
    ("[log]\nlevel = 'loud'\n", {},
     "error: log.level must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL' (it is 'LOUD') in settings.toml"),
    ("", {"PLBA_PLATFORM__CONTROL__ENABLED": "true", "PLBA_PLATFORM__CONTROL__HOST": "nowhere.invalid"},
     "error: platform.control.host cannot be resolved: 'nowhere.invalid'"),
])
def test_plba_run_refuses_bad_settings_with_one_line_and_exit_2(project: Path, env: dict[str, str],
                                                                settings: str | None, extra_env: dict[str, str],
                                                                expected: str) -> None:
    if settings is None:
        (project / "settings.toml").mkdir()
    else:
        (project / "settings.toml").write_text(settings)
    result = plba("run", "--plugin", "acme", cwd=project, env={**env, **extra_env})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(expected), result.stderr
    assert not (project / "var").exists()


def test_plba_run_warns_about_a_typo_and_runs(project: Path, env: dict[str, str], running: list) -> None:
    (project / "settings.toml").write_text("[acme]\njbos = 2\n")
    process = PlbaProcess("run", "--plugin", "acme", cwd=project, env=env)
    running.append(process)
    process.wait_for_output("handled {'n': 2}")
    assert "unknown key acme.jbos in settings.toml (did you mean acme.jobs?)" in process.output()
    process.signal(signal.SIGINT)
    assert process.wait() == 0


def test_config_check_finds_what_plba_run_would_refuse_in_schedule_overrides_and_the_cluster_url(
        cli: CliRunner, project: Path) -> None:
    # Given overrides no schedule could take, and a cluster URL of an unknown kind
    (project / "settings.toml").write_text(
        '[platform.cluster]\nurl = "mysql://db.example/plba"\n'
        '[platform.schedules."acme.tick"]\nevery = 0\n'
        '[platform.schedules."acme.night"]\ncron = "0 2 * * *"\ntimezone = "Mars/Olympus"\n'
        '[platform.schedules.report]\nevery = 5\ncron = "* * * * *"\nenabled = "yes"\n')
    # When the settings are checked, then every problem is one line naming its key and file, exit 2
    result = cli.invoke(app, ["config", "check", "--plugin", "acme"])
    assert result.exit_code == 2
    assert sorted(result.stderr.splitlines()) == [
        "error: platform.cluster.url: must be empty, a redis:// or a postgresql:// URL, not mysql://... "
        "in settings.toml",
        "error: platform.schedules.\"acme.night\".timezone: timezone 'Mars/Olympus' is not a known IANA timezone "
        "(e.g. 'Europe/Berlin') in settings.toml",
        'error: platform.schedules."acme.tick".every: every must be a number of seconds of at least 0.001, not 0 '
        "in settings.toml",
        'error: platform.schedules."report".enabled: must be true or false, not \'yes\' in settings.toml',
        'error: platform.schedules."report": set every or cron, not both in settings.toml',
    ]
    # And good overrides pass
    (project / "settings.toml").write_text('[platform.schedules."acme.tick"]\nevery = 5\nenabled = false\n')
    assert cli.invoke(app, ["config", "check", "--strict", "--plugin", "acme"]).exit_code == 0


def test_a_dotted_schedule_name_written_unquoted_or_in_a_variable_is_checked_as_that_name(
        cli: CliRunner, project: Path) -> None:
    # Given an override of `acme.tick` written as nested tables (TOML without quotes)
    (project / "settings.toml").write_text("[platform.schedules.acme.tick]\nevery = 0\n")
    # When checked, then its value is found wrong, named as the schedule's
    result = cli.invoke(app, ["config", "check", "--plugin", "acme"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ['error: platform.schedules."acme.tick".every: every must be a number of '
                                          'seconds of at least 0.001, not 0 in settings.toml']
    # And so it is from an environment variable, whose dot dynaconf reads as nesting too
    (project / "settings.toml").write_text("")
    from_env = cli.invoke(app, ["config", "check", "--plugin", "acme"],
                          env={"PLBA_PLATFORM__SCHEDULES__ACME.TICK__EVERY": "0"})
    assert from_env.exit_code == 2
    assert "platform.schedules.\"acme.tick\".every: every must be a number" in from_env.stderr
