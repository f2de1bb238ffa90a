"""Both wheels built as for PyPI and installed into a fresh plain venv, once per test session.

The wheels are built from a copy of the sources (so no `build/` is left in the checkout), with
build isolation: the build backend comes from the index, as for anyone running `python -m build`.
The venv is a plain one, so it cannot see the editable checkout; pip fetches the dependencies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, plba_env

BOT = REPO / "plugins" / "mail_order_bot"
COPY_IGNORES = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*_cache", "var")


@dataclass
class Installed:
    """The built wheels, the venv they are installed in, and why the bot is missing (None when it is not)."""

    plba_wheel: Path
    venv: Path
    workdir: Path
    bot_wheel: Path | None = None
    bot_missing: str | None = None

    def run(self, program: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run a program of the venv (in `workdir` unless told), with no PLBA_ settings or PYTHONPATH inherited."""
        return subprocess.run([str(self.venv / "bin" / program), *args], cwd=cwd or self.workdir, env=self.env(),
                              capture_output=True, text=True, timeout=120)

    @staticmethod
    def env() -> dict[str, str]:
        """The environment of a user who never heard of PLBA_ variables."""
        env = plba_env()
        env.pop("PYTHONPATH", None)
        return env

    def need_bot(self) -> Path:
        """The bot's wheel, or a skip saying why there is none."""
        if self.bot_wheel is None:
            pytest.skip(f"plugins/mail_order_bot does not build yet: {self.bot_missing}")
        return self.bot_wheel


def build_wheel(source: Path, outdir: Path) -> subprocess.CompletedProcess:
    """`python -m build --wheel` of the project in `source`, into `outdir`."""
    return subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(source)],
                          capture_output=True, text=True, timeout=300)


def wheel_in(outdir: Path, prefix: str) -> Path:
    """The one wheel in `outdir` whose file name starts with `prefix`."""
    (wheel,) = outdir.glob(f"{prefix}-*.whl")
    return wheel


def install_both(root: Path) -> Installed:
    """Build plba and the bot into `root/dist` and install them (with their dependencies) into `root/venv`."""
    outdir = root / "dist"
    # plba's own sources only: its tests and plugins are not part of the distribution.
    plba_source = root / "plba-src"
    shutil.copytree(REPO / "plba", plba_source / "plba", ignore=COPY_IGNORES)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, plba_source / name)
    built = build_wheel(plba_source, outdir)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = [wheel_in(outdir, "plba")]
    bot_source = root / "bot-src"
    shutil.copytree(BOT, bot_source, ignore=COPY_IGNORES)
    bot_built = build_wheel(bot_source, outdir)
    bot_wheel, bot_missing = None, None
    if bot_built.returncode == 0:
        bot_wheel = wheel_in(outdir, "mail_order_bot_plugin")
        wheels.append(bot_wheel)
    else:
        bot_missing = (bot_built.stderr.strip() or bot_built.stdout.strip()).splitlines()[-1]
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *map(str, wheels)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    workdir = root / "work"
    workdir.mkdir()
    return Installed(wheels[0], venv, workdir, bot_wheel, bot_missing)
