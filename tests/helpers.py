"""Helpers shared by the core tests: waiting for conditions, plugin distributions, `plba` subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plba.testing import wait_until

REPO = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, message: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    return wait_until(condition, timeout=timeout, message=message)


def write_distribution(site: Path, dist: str, version: str, entry_points: dict[str, str],
                       modules: dict[str, str], group: str = "plba.modules") -> Path:
    """Install a distribution into `site` the way pip lays it out: modules plus a .dist-info with entry points."""
    site.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")
    return site


def plba_env(site: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a `plba` subprocess: the test site on PYTHONPATH, no inherited PLBA_ settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLBA_")}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def plba(*args: str, cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `plba ARGS` to completion and capture its output."""
    return subprocess.run([sys.executable, "-m", "plba", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def plba_in_process(*args: str, cwd: Path, env: dict[str, str],
                    stdin: str | None = None) -> subprocess.CompletedProcess:
    """`plba ARGS` through Typer's CliRunner in `cwd`, with `stdin` piped in: `plba()` without the process.

    For argument parsing and error lines; signals, exit codes of `plba run` and installed use
    need the real process (`plba`, `PlbaProcess`). Of `env`, the PLBA_ variables (and no others
    from this process) and COLUMNS apply; PYTHONPATH does not, so no plugin site is seen.
    """
    from typer.testing import CliRunner

    from plba.cli import app

    variables: dict[str, str | None] = {name: None for name in os.environ if name.startswith("PLBA_")}
    variables.update((name, value) for name, value in env.items() if name.startswith("PLBA_") or name == "COLUMNS")
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, list(args), input=stdin or "", env=variables)
    return subprocess.CompletedProcess(["plba", *args], result.exit_code, result.stdout, result.stderr)


class PlbaProcess:
    """A `plba run` in the background whose stderr log can be awaited line by line."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str]) -> None:
        self.log_path = cwd / f"plba-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "plba", *args], cwd=cwd, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text()

    def wait_for_output(self, text: str, timeout: float = 20.0) -> None:
        """Wait until `text` appears in its output (or fail, showing the output)."""
        try:
            wait_for(lambda: text in self.output() or self.process.poll() is not None, timeout, repr(text))
        finally:
            if text not in self.output():
                raise AssertionError(f"{text!r} never appeared; output:\n{self.output()}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for exit and return the exit code."""
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        """Kill it if still running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
