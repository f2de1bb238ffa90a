"""Configuration: layers in order, deep merge, environment, validation, masking, reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plba.config import MASK, ConfigurationManager
from plba.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """A project with every file layer, each overriding one more key than the one below."""
    write(tmp_path / "settings.toml", '[app]\na = "settings"\nb = "settings"\nc = "settings"\nd = "settings"\n'
                                      'e = "settings"\n[app.nested]\nkeep = 1\n')
    write(tmp_path / "settings.local.toml", '[app]\nb = "local"\nc = "local"\nd = "local"\ne = "local"\n')
    write(tmp_path / ".secrets.toml", '[app]\nc = "secrets"\nd = "secrets"\ne = "secrets"\n[app.nested]\nadded = 2\n')
    write(tmp_path / "extra.toml", '[app]\nd = "extra"\ne = "extra"\n')
    return tmp_path


def test_later_layers_win_and_tables_are_deep_merged(layered: Path) -> None:
    # Given every layer plus an environment variable
    manager = ConfigurationManager([layered / "extra.toml"], root=layered, environ={"PLBA_APP__E": "env"})
    # Then each key comes from the highest layer that sets it, and nested tables merge
    settings = manager.settings
    assert [settings.get(f"app.{k}") for k in "abcde"] == ["settings", "local", "secrets", "extra", "env"]
    assert settings.get("app.nested.keep") == 1 and settings.get("app.nested.added") == 2


def test_environment_values_are_parsed_as_toml(tmp_path: Path) -> None:
    environ = {"PLBA_PLATFORM__CONTROL__PORT": "9000", "PLBA_APP__FLAGS": "[1, 2]", "PLBA_APP__ON": "true",
               "PLBA_APP__NAME": "plain words", "PLBA_LOAD_PLUGINS": "a,b"}
    settings = ConfigurationManager(root=tmp_path, environ=environ).settings
    assert settings.get("platform.control.port") == 9000
    assert settings.get("app.flags") == [1, 2] and settings.get("app.on") is True
    assert settings.get("app.name") == "plain words"
    assert settings.get("load_plugins") is None


def test_a_missing_config_file_given_by_the_user_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.toml: configuration file not found"):
        ConfigurationManager([tmp_path / "nowhere.toml"], root=tmp_path, environ={})


def test_a_malformed_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", "[platform\nport = \n")
    with pytest.raises(ConfigError, match=r"settings.toml: cannot be parsed"):
        ConfigurationManager(root=tmp_path, environ={})


def test_yaml_and_json_files_are_accepted(tmp_path: Path) -> None:
    yaml_file = write(tmp_path / "a.yml", "app:\n  from_yaml: 1\n")
    json_file = write(tmp_path / "b.json", json.dumps({"app": {"from_json": 2}}))
    settings = ConfigurationManager([yaml_file, json_file], root=tmp_path, environ={}).settings
    assert settings.get("app.from_yaml") == 1 and settings.get("app.from_json") == 2


def test_an_unsupported_file_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported configuration format"):
        ConfigurationManager([write(tmp_path / "a.ini", "[x]\n")], root=tmp_path, environ={})


def test_validation_lists_every_problem_at_once(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", '[platform]\nshutdown_timeout = "soon"\n[platform.control]\nport = -1\n'
                                      '[platform.tracing]\ntransport = "carrier-pigeon"\n'
                                      '[platform.queues.orders]\nbackend = "redis"\nmax_attempts = 0\n')
    manager = ConfigurationManager(root=tmp_path, environ={})
    with pytest.raises(ConfigError) as error:
        manager.validate()
    problems = error.value.problems
    assert len(problems) == 5, problems
    for key in ("platform.shutdown_timeout", "platform.control.port", "platform.tracing.transport",
                "platform.queues.orders.url", "platform.queues.orders.max_attempts"):
        assert any(key in problem for problem in problems), key


def test_queue_tables_name_an_unknown_backend_and_a_negative_dead_max(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", '[platform.queues.orders]\nbackend = "kafka"\ndead_max = -1\n')
    with pytest.raises(ConfigError) as error:
        ConfigurationManager(root=tmp_path, environ={}).validate()
    assert error.value.problems == [
        "platform.queues.orders.backend: unknown backend 'kafka' (installed: memory, redis)",
        "platform.queues.orders.dead_max: must be a number >= 0, not -1",
    ]


def test_secrets_are_masked_by_file_and_by_name(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", '[mail]\nuser = "orders"\npassword = "in-settings"\n')
    write(tmp_path / ".secrets.toml", '[platform.control]\ntoken = "t0ken"\n[mail]\nsigning = "s3cret"\n')
    manager = ConfigurationManager(root=tmp_path, environ={"PLBA_DB__API_KEY": "k3y"})
    masked = json.dumps(manager.masked())
    for secret in ("in-settings", "t0ken", "s3cret", "k3y"):
        assert secret not in masked
    assert manager.masked()["mail"] == {"user": "orders", "password": MASK, "signing": MASK}


def test_reload_swaps_in_new_settings_and_tells_subscribers_what_changed(tmp_path: Path) -> None:
    settings_file = write(tmp_path / "settings.toml", "[app]\nrate = 1\nsame = true\n")
    manager = ConfigurationManager(root=tmp_path, environ={})
    seen = []
    manager.subscribe(lambda settings, changed: seen.append((settings.get("app.rate"), changed)))
    settings_file.write_text("[app]\nrate = 2\nsame = true\nnew = 'x'\n")
    changed = manager.reload()
    assert changed == ["app.new", "app.rate"]
    assert seen == [(2, ["app.new", "app.rate"])] and manager.settings.get("app.rate") == 2


def test_an_invalid_reload_keeps_the_current_settings(tmp_path: Path) -> None:
    settings_file = write(tmp_path / "settings.toml", "[platform.control]\nport = 8080\n")
    manager = ConfigurationManager(root=tmp_path, environ={})
    settings_file.write_text("[platform.control]\nport = -3\n")
    with pytest.raises(ConfigError, match="platform.control.port"):
        manager.reload()
    assert manager.settings.get("platform.control.port") == 8080


def test_the_committed_secrets_file_holds_placeholders_only() -> None:
    # The repository ships .secrets.toml as an example; a real secret must never be committed.
    repo = Path(__file__).resolve().parent.parent
    manager = ConfigurationManager(root=repo, environ={})
    secrets = manager.secret_keys
    assert secrets == set(), f".secrets.toml must hold only commented placeholders, found {sorted(secrets)}"
