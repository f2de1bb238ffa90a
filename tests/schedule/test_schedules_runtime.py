"""Schedules in a real runtime: registration, settings overrides, real-time firing, the control plane and the CLI."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from plba import ApplicationModule, Firing
from plba.cli import app as cli
from plba.config import display_path
from plba.errors import ConfigError, PluginError
from plba.testing import health_of, wait_until
from tests.control.conftest import isolated  # noqa: F401 - autouse: an empty directory, no PLBA_ variables

TOKEN = "sched-token-7c1d"


class Reports(ApplicationModule):
    """Registers `acme.report` with the given timing and records its firings."""

    name = "acme"

    def __init__(self, **timing) -> None:
        self.timing = timing or {"every": 3600}
        self.firings: list[Firing] = []
        self.lock = threading.Lock()

    def report(self, firing: Firing) -> None:
        with self.lock:
            self.firings.append(firing)

    def register(self, registry) -> None:
        registry.schedule("acme.report", self.report, **self.timing)


def overrides(**table) -> dict:
    return {"platform": {"schedules": {"acme.report": table}}}


def test_an_every_schedule_fires_in_real_time_on_consecutive_slots(plba_runtime) -> None:
    # Given a schedule every 50 ms in a running runtime
    plugin = Reports(every=0.05)
    runtime = plba_runtime(plugin)
    # When a few slots pass, then it fired for each, 50 ms apart, and reads healthy
    wait_until(lambda: len(plugin.firings) >= 4, message="four firings")
    slots = [f.scheduled_at for f in plugin.firings[:4]]
    assert [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)] == [0.05] * 3
    assert health_of(runtime, "schedule acme.report")["status"] == "ok"
    assert health_of(runtime, "plba.scheduler")["status"] == "ok"


def test_a_settings_override_changes_the_timing_and_can_disable_a_schedule(plba_runtime) -> None:
    # Given a plugin scheduling hourly, and settings making it a cron schedule every second
    plugin = Reports(every=3600)
    runtime = plba_runtime(plugin, settings=overrides(cron="* * * * * *", timezone="Europe/Berlin"))
    # When a second passes, then it fired on the override's timing, in its timezone
    wait_until(lambda: plugin.firings, message="a firing on the cron override", timeout=5)
    assert plugin.firings[0].scheduled_at.microsecond == 0
    assert str(plugin.firings[0].scheduled_at.tzinfo) == "Europe/Berlin"
    entry = runtime.scheduler.schedules()[0]
    assert (entry["every"], entry["cron"], entry["timezone"]) == (None, "* * * * * *", "Europe/Berlin")
    # And `enabled = false` keeps it from firing while still listing it
    disabled = plba_runtime(Reports(every=0.01), settings=overrides(enabled=False))
    assert disabled.scheduler.schedules()[0]["enabled"] is False
    assert disabled.scheduler.schedules()[0]["next_run"] is None


def test_bad_override_values_are_one_line_each_naming_the_key(plba_runtime) -> None:
    # Given overrides with a bad cron and an unknown key
    settings = {"platform": {"schedules": {"acme.report": {"cron": "99 * * * *", "enabeld": False}}}}
    # When the runtime builds, then it refuses, naming each key and where it came from
    with pytest.raises(ConfigError) as raised:
        plba_runtime(Reports(), settings=settings)
    assert raised.value.problems == [
        "platform.schedules.\"acme.report\".cron: cron '99 * * * *' is not a valid cron expression in overrides",
        "unknown key platform.schedules.acme.report.enabeld in overrides "
        "(did you mean platform.schedules.acme.report.enabled?)"]


def test_a_reload_applies_changed_overrides_at_once_and_refuses_bad_ones(plba_runtime, tmp_path) -> None:
    # Given a schedule every 20 ms, running on a settings file without overrides
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    plugin = Reports(every=0.02)
    runtime = plba_runtime(plugin, config_path=settings)
    wait_until(lambda: plugin.firings, message="a firing")
    # When the file disables it and the runtime reloads
    settings.write_text('[platform.schedules."acme.report"]\nenabled = false\n')
    assert 'platform.schedules.acme.report.enabled' in runtime.reload()
    # Then it is listed disabled, with no next run planned
    entry = runtime.scheduler.schedules()[0]
    assert (entry["enabled"], entry["next_run"]) == (False, None)
    assert health_of(runtime, "schedule acme.report")["detail"] == "disabled"
    # When a bad cron is written and reloaded, then the reload is refused naming the key, and nothing changed
    settings.write_text('[platform.schedules."acme.report"]\ncron = "99 * * * *"\n')
    with pytest.raises(ConfigError, match=r'platform.schedules."acme.report".cron: cron \'99 \* \* \* \*\' is not'):
        runtime.reload()
    assert runtime.scheduler.schedules()[0]["enabled"] is False
    # When the override moves it to an hourly cron in Berlin, then it is planned on that at once
    settings.write_text('[platform.schedules."acme.report"]\ncron = "0 * * * *"\ntimezone = "Europe/Berlin"\n')
    runtime.reload()
    entry = runtime.scheduler.schedules()[0]
    assert (entry["enabled"], entry["every"], entry["cron"], entry["timezone"]) == (True, None, "0 * * * *",
                                                                                    "Europe/Berlin")
    assert entry["next_run"].endswith(":00:00+01:00") or entry["next_run"].endswith(":00:00+02:00")


@pytest.mark.parametrize(("timing", "message"), [
    ({}, "give exactly one of every (seconds) or cron"),
    ({"every": 5, "misfire": "all"}, "misfire must be 'once' or 'skip'"),
])
def test_a_bad_registration_fails_the_plugin_naming_the_schedule(plba_runtime, timing, message) -> None:
    class Bad(Reports):
        def register(self, registry) -> None:
            registry.schedule("acme.report", self.report, **timing)

    with pytest.raises(PluginError) as raised:
        plba_runtime(Bad())
    assert "plugin 'acme' failed in register_workers" in str(raised.value)
    assert f"schedule 'acme.report': {message}" in str(raised.value)


def test_schedules_are_listed_and_run_through_the_control_plane(plba_runtime) -> None:
    # Given an hourly schedule in a runtime serving its control plane with a token
    plugin = Reports(every=3600)
    runtime = plba_runtime(plugin, http=True, settings={"platform": {"control": {"token": TOKEN}}})
    client = runtime.control.app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # When the schedules are read, then it is listed with its timing and no run yet
    listed = client.get("/schedules").get_json()["schedules"]
    assert [(e["name"], e["every"], e["cron"], e["timezone"], e["enabled"], e["runs"], e["last_run"])
            for e in listed] == [("acme.report", 3600, None, "UTC", True, 0, None)]
    assert listed[0]["next_run"].endswith("+00:00")
    # When it is run without the token, or an unknown one is run, then JSON errors say why
    assert client.post("/actions/schedules/acme.report/run").status_code == 401
    missing = client.post("/actions/schedules/acme.nope/run", headers=auth)
    assert (missing.status_code, missing.get_json()) == (404, {"error": "no schedule named 'acme.nope'"})
    # When it is run with the token, then it fires once now, marked manual
    answer = client.post("/actions/schedules/acme.report/run", headers=auth)
    assert answer.status_code == 202
    assert answer.get_json()["schedule"] == "acme.report"
    wait_until(lambda: client.get("/schedules").get_json()["schedules"][0]["runs"] == 1, message="the run")
    assert [f.manual for f in plugin.firings] == [True]
    # And the metric counts it
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'plba_schedule_runs_total{outcome="ok",schedule="acme.report"} 1.0' in metrics


def test_plba_schedules_list_and_run_talk_to_a_running_instance(plba_runtime, monkeypatch) -> None:
    # Given a running instance with a token, and the CLI configured with the same token
    plugin = Reports(every=3600)
    runtime = plba_runtime(plugin, http=True, settings={"platform": {"control": {"token": TOKEN}}})
    monkeypatch.setenv("PLBA_PLATFORM__CONTROL__TOKEN", TOKEN)
    runner = CliRunner(env={"COLUMNS": "200"})
    url = ["--url", runtime.control.url]
    # When `plba schedules run` is given its name, then it fires once
    ran = runner.invoke(cli, ["schedules", "run", "acme.report", *url])
    assert ran.exit_code == 0, ran.output
    assert ran.output.startswith("schedule acme.report fired for ")
    wait_until(lambda: plugin.firings, message="the firing")
    # And `plba schedules list --json` shows the run
    listed = runner.invoke(cli, ["schedules", "list", "--json", *url])
    assert listed.exit_code == 0, listed.output
    wait_until(lambda: json.loads(runner.invoke(cli, ["schedules", "list", "--json", *url]).output)[0]["runs"] == 1,
               message="the run listed")
    table = runner.invoke(cli, ["schedules", "list", *url])
    assert "acme.report" in table.output and "every 3600s" in table.output and " UTC " in table.output
    # When an unknown schedule is run, then one error line and exit code 2
    unknown = runner.invoke(cli, ["schedules", "run", "nope", *url])
    assert unknown.exit_code == 2
    assert unknown.output.strip().splitlines() == [
        f"error: POST {runtime.control.url}/actions/schedules/nope/run: 404 no schedule named 'nope'"]


def test_plba_reload_prints_the_changed_keys_or_every_problem_and_changes_nothing(plba_runtime, tmp_path,
                                                                                  monkeypatch) -> None:
    # Given a running instance with a token, on a settings file, and the CLI sending that token
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    runtime = plba_runtime(Reports(every=3600), http=True, config_path=settings,
                           settings={"platform": {"control": {"token": TOKEN}}})
    runner = CliRunner(env={"COLUMNS": "200"})
    url = ["--url", runtime.control.url, "--token", TOKEN]
    # When the file changes a schedule's timing and `plba reload` runs
    settings.write_text('[platform.schedules."acme.report"]\nevery = 60\n')
    reloaded = runner.invoke(cli, ["reload", *url])
    # Then it names the changed key, and the schedule runs on the new timing
    assert reloaded.exit_code == 0, reloaded.output
    assert reloaded.output.splitlines() == [f"reloaded {runtime.control.url}: 1 key(s) changed",
                                            "  platform.schedules.acme.report.every"]
    assert runtime.scheduler.schedules()[0]["every"] == 60
    # When the file is broken in two places, then one line per problem, exit 2, and nothing changed
    settings.write_text('[platform.schedules."acme.report"]\nevery = 0\ncolour = "red"\n')
    refused = runner.invoke(cli, ["reload", *url])
    assert refused.exit_code == 2
    assert refused.output.splitlines() == [
        f"error: {runtime.control.url}: the new configuration is invalid; the current one stays in force",
        'error: platform.schedules."acme.report".every: every must be a number of seconds of at least 0.001, '
        f"not 0 in {display_path(settings)}",
        f"error: unknown key platform.schedules.acme.report.colour in {display_path(settings)} "
        "(known here: cron, enabled, every, timezone)"]
    assert runtime.scheduler.schedules()[0]["every"] == 60
    # And `--json` gives the changed keys for scripts
    settings.write_text("")
    assert json.loads(runner.invoke(cli, ["reload", "--json", *url]).output) == {
        "changed": ["platform.schedules.acme.report.every"]}


def test_an_override_written_as_nested_tables_applies_to_the_dotted_name(plba_runtime) -> None:
    # Given `[platform.schedules.acme.report]` without quotes, which reads as nested tables
    settings = {"platform": {"schedules": {"acme": {"report": {"every": 60}}}}}
    # When the runtime starts, then the schedule runs on the override
    runtime = plba_runtime(Reports(every=3600), settings=settings)
    assert runtime.scheduler.schedules()[0]["every"] == 60


def test_override_tables_join_the_parts_of_dotted_names_also_beside_a_shorter_names_own_keys() -> None:
    from plba.schedule.definition import override_tables

    # `[platform.schedules.acme]` every = 60 and unquoted `[platform.schedules.acme.report]` every = 30
    nested = {"platform.schedules": {"acme": {"every": 60, "report": {"every": 30}}, "Night.Ly": {}}}
    assert override_tables(nested) == {"acme": {"every": 60}, "acme.report": {"every": 30}, "night.ly": {}}
    # A value that is no table stays under its name, for the check to refuse
    assert override_tables({"platform.schedules": {"acme.report": 5}}) == {"acme.report": 5}
