"""What a person sees from `plba run`: a banner before the work, no line per span, a summary of the run."""

from __future__ import annotations

import re
import signal

from plba import __version__
from tests.helpers import PlbaProcess


def test_plba_run_prints_a_banner_before_the_first_work_and_a_summary_of_the_whole_run(running, project, env) -> None:
    # Given the working plugin and the control plane on any free port
    process = PlbaProcess("run", "--plugin", "acme", cwd=project, env={
        **env, "PLBA_PLATFORM__CONTROL__ENABLED": "true", "PLBA_PLATFORM__CONTROL__PORT": "0"})
    running.append(process)
    # When it has handled its three jobs and is stopped
    process.wait_for_output("handled {'n': 2}")
    process.wait_for_output("runtime started")
    process.signal(signal.SIGINT)
    assert process.wait() == 0
    output = process.output()
    lines = output.splitlines()
    # Then the banner names the version, the plugin and its version, the worker and its concurrency,
    # the queue and its backend, the control plane's real URL and the start-up time
    url = re.search(r"control plane listening on (http://\S+)", output).group(1)
    assert not url.endswith(":0")
    first = next(i for i, line in enumerate(lines) if line.startswith(f"plba {__version__} ready in "))
    assert re.fullmatch(rf"plba {re.escape(__version__)} ready in \d+\.\d\ds \(Ctrl-C stops, twice forces\)",
                        lines[first])
    assert lines[first + 1:first + 5] == [
        "  plugins  acme 1.2.3",
        "  workers  acme-worker ×2",
        "  queues   acme (memory)",
        f"  control  {url}",
    ]
    # And it comes before any work
    assert first < next(i for i, line in enumerate(lines) if line.startswith("handled "))
    # And with the default settings, a task adds no log line per span
    assert "plba.traces" not in output
    # And the summary counts the tasks of the whole run, not only those in flight at the stop
    assert "stopped: 3 task(s) processed and 0 failed during the run;" in output


def test_the_banner_is_one_json_record_under_json_logs(running, project, env) -> None:
    import json

    process = PlbaProcess("run", "--plugin", "acme", cwd=project, env={**env, "PLBA_LOG__FORMAT": "json"})
    running.append(process)
    process.wait_for_output("runtime started")
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    records = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
    (record,) = [r for r in records if r["message"].startswith(f"plba {__version__} ready in ")]
    assert "; plugins acme 1.2.3; workers acme-worker ×2; queues acme (memory); control off" in record["message"]
    assert not [line for line in process.output().splitlines() if line.startswith("  plugins")]
