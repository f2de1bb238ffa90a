"""Configuration: layers in order, deep merge, environment, validation, masking, reload."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from dynaconf import Validator

from plba.config import MASK, ConfigurationManager, flatten
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
    dead_max, backend = error.value.problems
    assert dead_max.startswith("platform.queues.orders.dead_max must be at least 0 (it is -1) in ")
    assert backend == "platform.queues.orders.backend: unknown backend 'kafka' (installed: memory, postgres, redis)"


def test_secrets_are_masked_by_file_and_by_name(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", '[mail]\nuser = "orders"\npassword = "in-settings"\n')
    write(tmp_path / ".secrets.toml", '[platform.control]\ntoken = "t0ken"\n[mail]\nsigning = "s3cret"\n')
    manager = ConfigurationManager(root=tmp_path, environ={"PLBA_DB__API_KEY": "k3y"})
    masked = json.dumps(manager.masked())
    for secret in ("in-settings", "t0ken", "s3cret", "k3y"):
        assert secret not in masked
    assert manager.masked()["mail"] == {"user": "orders", "password": MASK, "signing": MASK}


def test_flatten_gives_dotted_lower_case_keys_and_keeps_an_empty_table_as_a_value() -> None:
    # An empty table is a setting of its own: `config show` lists it and a reload that fills it changes it.
    nested = {"Platform": {"control": {"port": 0}, "queues": {}}, "jobs": {"password": "x", "tags": ["a"]}}
    assert flatten(nested) == {"platform.control.port": 0, "platform.queues": {}, "jobs.password": "x",
                               "jobs.tags": ["a"]}
    assert flatten({}) == {} and flatten({"only": {}}) == {"only": {}}


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


# -- where each key came from -------------------------------------------------------------


def test_origins_name_the_default_the_file_or_the_variable(tmp_path: Path) -> None:
    # Given a default, a value from settings.toml, one from --config and one from the environment
    write(tmp_path / "settings.toml", "[platform.control]\nport = 9001\n")
    extra = write(tmp_path / "extra.toml", "[platform]\nshutdown_timeout = 3\n")
    manager = ConfigurationManager([extra], root=tmp_path, environ={"PLBA_LOG__LEVEL": "debug"})
    # When the origins are asked for
    origins = manager.origins()
    # Then each key in force names the layer it came from
    assert origins["platform.control.host"] == "default"
    assert Path(origins["platform.control.port"]).name == "settings.toml"
    assert Path(origins["platform.shutdown_timeout"]).name == "extra.toml"
    assert origins["log.level"] == "env PLBA_LOG__LEVEL"


def test_a_plugin_validator_default_applies_with_no_file_and_has_origin_default(tmp_path: Path) -> None:
    # Given no settings file, and a plugin that declares its section with validator defaults
    manager = ConfigurationManager(root=tmp_path, environ={})
    manager.settings.validators.register(Validator("acme.jobs", default=3, is_type_of=int),
                                         Validator("acme.mode", default="fast", is_in=["fast", "slow"]))
    # When the settings are validated
    assert manager.validate() == []
    # Then the defaults are in force, come from "default", and are shown
    assert manager.settings.get("acme.jobs") == 3
    assert manager.origins()["acme.mode"] == "default"
    assert manager.masked()["acme"] == {"jobs": 3, "mode": "fast"}


def test_a_declared_queue_gets_the_defaults_of_the_keys_its_backend_reads(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", '[platform.queues.orders]\nbackend = "redis"\nurl = "redis://h:1/0"\n')
    manager = ConfigurationManager(root=tmp_path, environ={})
    manager.validate()
    orders = manager.masked()["platform"]["queues"]["orders"]
    assert orders["visibility_timeout"] == 60.0 and orders["prefetch"] == 20 and "maxsize" not in orders
    assert manager.origins()["platform.queues.orders.prefetch"] == "default"


# -- files that cannot be read or parsed, and sections of the wrong shape -----------------


def test_a_directory_named_like_a_settings_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / ".secrets.toml").mkdir()
    with pytest.raises(ConfigError, match=r"\.secrets\.toml: cannot be read: is a directory"):
        ConfigurationManager(root=tmp_path, environ={})


def test_a_settings_file_without_read_permission_is_an_error_naming_it() -> None:
    # Given a settings.toml of mode 000 (root reads it anyway, so the check runs as an unprivileged user)
    project = Path(tempfile.mkdtemp(prefix="plba-unreadable-"))
    try:
        project.chmod(0o755)
        write(project / "settings.toml", "[platform.queues.orders]\nbackend = 'redis'\n").chmod(0)
        # When the configuration is loaded
        outcome = as_unprivileged(lambda: _load_error(project))
        # Then it is an error naming the file and the reason, not a warning and a default in its place
        assert outcome == "settings.toml: cannot be read: permission denied" or \
            outcome.endswith("/settings.toml: cannot be read: permission denied"), outcome
    finally:
        shutil.rmtree(project)


def _load_error(project: Path) -> str:
    try:
        ConfigurationManager(root=project, environ={})
    except ConfigError as exc:
        return str(exc)
    return "loaded without error"


def as_unprivileged(function: Callable[[], str]) -> str:
    """`function()` run as the user `nobody` (in a forked child) when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return function()
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges for good, run, report, and leave without cleanup
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            result = function()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = f"child failed: {exc!r}"
        os.write(write_end, result.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("settings.toml", "[platform\nport = 1\n", r"settings.toml: cannot be parsed: .*\(at line 1, column 10\)$"),
    ("extra.yaml", "app:\n  a: 1\n b: [\n", r"extra.yaml: cannot be parsed: .* \(at line 3, column 2\)$"),
    ("extra.json", '{"app": 1,\n "b": }\n', r"extra.json: cannot be parsed: Expecting value: line 2 column 7"),
])
def test_a_parse_error_is_one_line_with_the_file_and_the_line(tmp_path: Path, name: str, text: str,
                                                              expected: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(ConfigError) as error:
        ConfigurationManager([] if name == "settings.toml" else [path], root=tmp_path, environ={})
    (line,) = error.value.problems
    assert "\n" not in line and re.search(expected, line), line


@pytest.mark.parametrize(("text", "expected"), [
    ("platform = 5\n", "platform must be a table (it is 5) in settings.toml"),
    ('[platform]\ncontrol = "x"\n', "platform.control must be a table (it is 'x') in settings.toml"),
    ("[platform]\nqueues = [1]\n", "platform.queues must be a table (it is [1]) in settings.toml"),
    ("[platform.queues]\norders = 1\n", "platform.queues.orders must be a table (it is 1) in settings.toml"),
])
def test_a_section_of_the_wrong_shape_is_an_error(tmp_path: Path, text: str, expected: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "settings.toml", text)
    with pytest.raises(ConfigError) as error:
        ConfigurationManager(root=tmp_path, environ={}).validate()
    assert error.value.problems == [expected]


# -- messages in plain words --------------------------------------------------------------


@pytest.mark.parametrize(("validator", "value", "expected"), [
    (Validator("app.n", gt=0), -1, "app.n must be greater than 0 (it is -1)"),
    (Validator("app.n", gte=1), 0, "app.n must be at least 1 (it is 0)"),
    (Validator("app.n", lt=5), 5, "app.n must be less than 5 (it is 5)"),
    (Validator("app.n", lte=9), 10, "app.n must be at most 9 (it is 10)"),
    (Validator("app.n", eq=1), 2, "app.n must be 1 (it is 2)"),
    (Validator("app.n", ne=1), 1, "app.n must not be 1 (it is 1)"),
    (Validator("app.n", is_in=["a", "b"]), "c", "app.n must be one of 'a', 'b' (it is 'c')"),
    (Validator("app.n", is_not_in=["a"]), "a", "app.n must not be one of 'a' (it is 'a')"),
    (Validator("app.n", is_type_of=int), "x", "app.n must be an integer (it is 'x')"),
    (Validator("app.n", is_type_of=(int, float)), "x", "app.n must be a number (it is 'x')"),
    (Validator("app.n", is_type_of=bool), 1, "app.n must be true or false (it is 1)"),
    (Validator("app.n", len_min=1), "", "app.n must not be empty (it is '')"),
    (Validator("app.n", len_min=3), "ab", "app.n must have a length of at least 3 (it is 'ab')"),
    (Validator("app.n", len_max=1), "ab", "app.n must have a length of at most 1 (it is 'ab')"),
    (Validator("app.n", len_eq=1), "ab", "app.n must have a length of 1 (it is 'ab')"),
    (Validator("app.n", cont="@"), "ab", "app.n must contain '@' (it is 'ab')"),
    (Validator("app.n", startswith="x"), "ab", "app.n must start with 'x' (it is 'ab')"),
    (Validator("app.n", endswith="x"), "ab", "app.n must end with 'x' (it is 'ab')"),
    (Validator("app.n", gt=0), "x", "app.n must be greater than 0 (it is 'x')"),
    (Validator("app.missing", must_exist=True), 1, "app.missing is required"),
    (Validator("app.missing", must_exist=True, when=Validator("app.n", must_exist=True, eq=1)), 1,
     "app.missing is required when app.n is 1"),
    (Validator("app.n", must_exist=False), 1, "app.n must not be set"),
])
def test_validation_messages_are_plain_words_naming_the_file(tmp_path: Path, validator: Validator, value: object,
                                                              expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a value set in settings.toml that a plugin's validator refuses
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "settings.toml", "[app]\nn = " + json.dumps(value) + "\n")
    manager = ConfigurationManager(root=tmp_path, environ={})
    manager.settings.validators.register(validator, Validator("app.n"))
    # When it is validated, then the message reads as words and names the file (where a value was set)
    with pytest.raises(ConfigError) as error:
        manager.validate()
    suffix = "" if "required" in expected else " in settings.toml"
    assert error.value.problems == [expected + suffix]


def test_a_plugin_s_own_message_is_kept_as_it_wrote_it(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", "[app]\nn = -1\n")
    manager = ConfigurationManager(root=tmp_path, environ={})
    manager.settings.validators.register(Validator("app.n", gt=0, messages={"operations": "app.n must be positive"}))
    with pytest.raises(ConfigError) as error:
        manager.validate()
    assert error.value.problems == ["app.n must be positive"]


def test_a_value_from_the_environment_is_blamed_on_its_variable(tmp_path: Path) -> None:
    manager = ConfigurationManager(root=tmp_path, environ={"PLBA_PLATFORM__CONTROL__PORT": "70000"})
    with pytest.raises(ConfigError) as error:
        manager.validate()
    assert error.value.problems == ["platform.control.port must be at most 65535 (it is 70000) "
                                    "from PLBA_PLATFORM__CONTROL__PORT"]


def test_a_secret_value_is_masked_in_a_validation_message(tmp_path: Path) -> None:
    write(tmp_path / ".secrets.toml", '[platform.control]\ntoken = ""\n[app]\nkey = "hunter2"\n')
    manager = ConfigurationManager(root=tmp_path, environ={})
    manager.settings.validators.register(Validator("app.key", len_min=10))
    with pytest.raises(ConfigError) as error:
        manager.validate()
    assert "hunter2" not in str(error.value) and MASK in str(error.value)
    assert "platform.control.token must not be empty" in str(error.value)


def test_an_unresolvable_control_host_is_a_configuration_error(tmp_path: Path) -> None:
    manager = ConfigurationManager(root=tmp_path, environ={"PLBA_PLATFORM__CONTROL__HOST": "nowhere.invalid"})
    with pytest.raises(ConfigError, match=r"^platform.control.host cannot be resolved: 'nowhere.invalid' "
                                          r"\(.+\) from PLBA_PLATFORM__CONTROL__HOST$"):
        manager.validate()
    # And with the control plane off the host is not looked up
    off = ConfigurationManager(root=tmp_path, environ={"PLBA_PLATFORM__CONTROL__HOST": "nowhere.invalid",
                                                       "PLBA_PLATFORM__CONTROL__ENABLED": "false"})
    assert off.validate() == []


# -- typos --------------------------------------------------------------------------------


def test_unknown_keys_in_known_sections_are_warnings_suggesting_the_nearest_key(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Given typos in the platform's tables, in a plugin's section and in a queue table
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "settings.toml", "[platform.control]\nprot = 9000\n[platfrom]\nshutdown_timeout = 1\n"
                                      "[acme]\nworker = 5\n[platform.queues.orders]\nmaxsiz = 3\n"
                                      "[reports]\nanything = 1\n[log]\nlevle = 'INFO'\n")
    manager = ConfigurationManager(root=tmp_path, environ={"PLBA_ACME__MODDE": "x"})
    manager.settings.validators.register(Validator("acme.workers", "acme.mode", default=1))
    # When validated
    warnings = manager.validate()
    # Then each is one warning naming the file and the nearest known key; [reports] is nobody's typo
    assert sorted(warnings) == [
        "unknown key acme.modde from PLBA_ACME__MODDE (did you mean acme.mode?)",
        "unknown key acme.worker in settings.toml (did you mean acme.workers?)",
        "unknown key log.levle in settings.toml (did you mean log.level?)",
        "unknown key platform.control.prot in settings.toml (did you mean platform.control.port?)",
        "unknown key platform.queues.orders.maxsiz in settings.toml (did you mean platform.queues.orders.maxsize?)",
        "unknown section [platfrom] in settings.toml (did you mean [platform]?)",
    ]
    # And with strict they are errors
    with pytest.raises(ConfigError, match="platform.control.prot"):
        manager.validate(strict=True)


def test_names_holding_dots_are_names_and_the_keys_in_their_tables_are_checked(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a schedule and a queue named with dots, as DESIGN's examples name them, one with a typo
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "settings.toml", '[platform.schedules."acme.report"]\nevery = 60\nenabled = false\n'
                                      '[platform.queues."acme.orders"]\nmaxsize = 5\n'
                                      '[platform.schedules."acme.night.ly"]\ncorn = "0 2 * * *"\n')
    # When validated, then only the typo is a problem (a schedule override would refuse it), named under the whole name
    with pytest.raises(ConfigError) as raised:
        ConfigurationManager(root=tmp_path, environ={}).validate()
    assert raised.value.problems == ['unknown key platform.schedules.acme.night.ly.corn in settings.toml '
                                     '(did you mean platform.schedules.acme.night.ly.cron?)']
    # And the names alone are no typos
    write(tmp_path / "settings.toml", '[platform.schedules."acme.report"]\nevery = 60\n'
                                      '[platform.queues."acme.orders"]\nmaxsize = 5\n')
    assert ConfigurationManager(root=tmp_path, environ={}).validate(strict=True) == []


def test_the_section_of_an_installed_plugin_is_not_called_a_typo(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", "[platforms]\nx = 1\n")
    manager = ConfigurationManager(root=tmp_path, environ={})
    assert manager.validate(plugins=["platforms"]) == []
    assert manager.validate() == [f"unknown section [platforms] in {tmp_path / 'settings.toml'} "
                                  "(did you mean [platform]?)"]


# -- masking ------------------------------------------------------------------------------


def test_passwords_inside_urls_are_masked_wherever_settings_are_shown(tmp_path: Path) -> None:
    write(tmp_path / "settings.toml", '[platform.queues.orders]\nbackend = "redis"\n'
                                      'url = "redis://:s3cret@127.0.0.1:1/0"\n'
                                      '[db]\ndsn = "postgresql://u:pw@h/db?sslpassword=x1"\nplain = "http://h/x"\n')
    manager = ConfigurationManager(root=tmp_path, environ={})
    masked = manager.masked()
    assert masked["platform"]["queues"]["orders"]["url"] == f"redis://:{MASK}@127.0.0.1:1/0"
    assert masked["db"] == {"dsn": f"postgresql://u:{MASK}@h/db?sslpassword={MASK}", "plain": "http://h/x"}
