"""Fixtures: a real throwaway Dovecot, per-test IMAP folders, and bot runtimes built with create_runtime."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The test helpers (dovecot, mailkit) live next to this file; pytest's importlib mode does not put it on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from dovecot import PASSWORD, USER, Dovecot  # noqa: E402
from plba.testing import wait_until  # noqa: E402, F401 - re-exported for the test modules


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A running Dovecot for the whole session; a missing binary fails in CI and skips elsewhere."""
    if shutil.which("dovecot") is None:
        reason = "dovecot is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason}; CI must run the IMAP tests")
        pytest.skip(reason)
    # Not under pytest's basetemp: pytest resets that tree to 0700, which locks `nobody` out mid-session.
    root = Path(tempfile.mkdtemp(prefix="mail-order-bot-dovecot-"))
    server = Dovecot(root)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


class Folder:
    """A fresh IMAP folder (and its rejects folder) for one test."""

    def __init__(self, server: Dovecot) -> None:
        self.server = server
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.rejects = f"{self.name}_rejected"
        with server.connect() as box:
            box.folder.create(self.name)

    def append(self, *raws: bytes) -> None:
        """Deliver messages, unseen."""
        with self.server.connect() as box:
            for raw in raws:
                box.append(raw, self.name, flag_set=())

    def unseen(self, folder: str | None = None) -> list[str]:
        """UIDs still unseen in this folder (or `folder`)."""
        with self.server.connect() as box:
            box.folder.set(folder or self.name)
            return box.uids("UNSEEN")

    def count(self, folder: str | None = None) -> int:
        """How many messages the folder (or `folder`) holds; 0 when it does not exist."""
        with self.server.connect() as box:
            target = folder or self.name
            if not box.folder.exists(target):
                return 0
            return box.folder.status(target)["MESSAGES"]

    def subjects(self, folder: str | None = None) -> list[str]:
        """Subjects of the messages in the folder, without marking them seen."""
        with self.server.connect() as box:
            box.folder.set(folder or self.name)
            return [msg.subject for msg in box.fetch(mark_seen=False, headers_only=True)]

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The `[mail_order_bot.imap]` table for this folder."""
        return {"host": "127.0.0.1", "port": self.server.port, "ssl": False, "user": USER, "password": PASSWORD,
                "folder": self.name, "rejects_folder": self.rejects, **overrides}


@pytest.fixture
def folder(dovecot: Dovecot) -> Folder:
    """A fresh folder on the session's Dovecot."""
    return Folder(dovecot)


def bot_settings(tmp_path: Path, platform: dict[str, Any] | None = None, **section: Any) -> dict[str, Any]:
    """Runtime settings for a bot writing to `tmp_path`, overridden by `platform` and `section` keys."""
    bot = {"source": "maildir", "mode": "poll", "poll_interval": 0.2, "workers": 3,
           "database": str(tmp_path / "orders.sqlite"), "catalogue": "", "maildir": str(tmp_path / "mail")}
    bot.update(section)
    return {"platform": {"shutdown_timeout": 10, "tracing": {"transport": "noop"},
                         "supervisor": {"restart_backoff": 0.05}, **(platform or {})},
            "mail_order_bot": bot}


@pytest.fixture
def run_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start a runtime with the mail order bot; every runtime started is closed after the test."""
    from plba import create_runtime

    import mail_order_bot.plugin as plugin

    # Keep the repository's settings.toml (and its var/ paths) out of the tests.
    monkeypatch.chdir(tmp_path)
    started = []

    def start(platform: dict[str, Any] | None = None, **section: Any) -> Any:
        settings = bot_settings(tmp_path, platform, **section)
        runtime = create_runtime(plugin, settings=settings, enable_http_control=False)
        started.append(runtime)
        return runtime.start()

    yield start
    for runtime in started:
        runtime.close()
