"""Three `plba run` processes sharing a cluster store and a queue: a schedule every second, one instance killed.

Shared by the fleet tests of each store (Redis, PostgreSQL), which give the settings as environment.
The plugin is written only against DESIGN.md and records in a file, so it needs no backend of its own.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from plba.testing import wait_until
from tests.helpers import PlbaProcess, plba_env, write_distribution

FLEET_PLUGIN = '''
import os

from plba import QueueWorker, Task, hookimpl


def record(line):
    # One append of one line: lines of the fleet's processes never interleave.
    fd = os.open(os.environ["FLEET_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


@hookimpl
def register_workers(registry):
    queue = registry.queue("fleet")

    def tick(firing):
        slot = int(firing.scheduled_at.timestamp())
        record(f"fired {slot} {os.getpid()}")
        queue.publish(Task("fleet.tick", {"slot": slot}))

    def handle(task):
        record(f"handled {task.payload['slot']} {os.getpid()}")

    registry.schedule("fleet.tick", tick, every=1)
    registry.add_worker(QueueWorker("fleet.worker", queue, handle, poll_timeout=0.1))
'''


class FleetLog:
    """What the fleet's processes recorded: (slot second, pid) of each firing and each handling."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self, kind: str) -> list[tuple[int, int]]:
        """(slot, pid) of every `kind` ("fired" or "handled") line so far."""
        if not self.path.exists():
            return []
        rows = [line.split() for line in self.path.read_text().splitlines()]
        return [(int(slot), int(pid)) for what, slot, pid in rows if what == kind]


def fleet_env(tmp_path: Path, **settings: str) -> tuple[dict[str, str], FleetLog]:
    """Environment for the fleet's processes (the plugin installed, `settings` as PLBA_ variables) and its log."""
    site = write_distribution(tmp_path / "site", "fleet-plugin", "1.0.0", {"fleet": "fleet_plugin"},
                              {"fleet_plugin": FLEET_PLUGIN})
    log = tmp_path / "fleet.log"
    env = plba_env(site, PLBA_LOAD_PLUGINS="fleet", FLEET_LOG=str(log), PLBA_PLATFORM__TRACING__TRANSPORT="noop",
                   PLBA_PLATFORM__QUEUES__FLEET__VISIBILITY_TIMEOUT="2", **settings)
    return env, FleetLog(log)


def run_fleet(workdir: Path, envs: list[dict[str, str]], log: FleetLog,
              while_running: Callable[[list[PlbaProcess]], None] = lambda fleet: None,
              after_kill: Callable[[list[PlbaProcess]], None] = lambda fleet: None) -> None:
    """Start one instance per env, SIGKILL the first after six firings, stop the rest; check every slot fired once.

    `while_running` is called once all run, `after_kill` once the survivors fired six more slots.
    """
    fleet = [PlbaProcess("run", cwd=workdir, env=env) for env in envs]
    try:
        for process in fleet:
            process.wait_for_output("runtime started")
        while_running(fleet)
        wait_until(lambda: len(log.entries("fired")) >= 6, timeout=20, message="six firings")
        fleet[0].process.send_signal(signal.SIGKILL)
        fleet[0].wait()
        killed_at = time.time()
        wait_until(lambda: len({s for s, _ in log.entries("fired") if s > killed_at + 1}) >= 6, timeout=20,
                   message="six firings after the kill")
        after_kill(fleet)
        # Every slot the survivors fired is handled through the shared queue (the killed one's
        # leased task comes back after the visibility timeout).
        killed = fleet[0].process.pid
        wait_until(lambda: {s for s, pid in log.entries("fired") if pid != killed}
                   <= {s for s, _ in log.entries("handled")}, timeout=20, message="every firing handled")
        for process in fleet[1:]:
            process.signal(signal.SIGTERM)
        assert [process.wait() for process in fleet[1:]] == [0] * (len(fleet) - 1)
    finally:
        for process in fleet:
            process.kill()
    # Then no slot fired twice, and every slot between the first and the last fired, but at most
    # the one in flight in the killed process
    fired = log.entries("fired")
    slots = [slot for slot, _ in fired]
    assert len(slots) == len(set(slots)), f"a slot fired twice: {fired}"
    missing = set(range(min(slots), max(slots) + 1)) - set(slots)
    assert len(missing) <= 1, f"slots never fired: {sorted(missing)}"
    # And the work was shared: more than one instance fired, none after it was killed
    assert len({pid for _, pid in fired}) >= 2
    assert all(slot <= killed_at for slot, pid in fired if pid == killed)
