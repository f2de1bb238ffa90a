"""Fixtures for the control-plane tests: runtimes serving a real waitress server on a free loopback port."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plba import QueueWorker, RuntimeManager, Task, create_runtime, hookimpl
from tests.helpers import wait_for

TOKEN = "tok-3f9a1c7e-control"


@dataclass
class Answer:
    """One HTTP answer: status, headers and body (decoded JSON when it is JSON)."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str


class Http:
    """A keep-alive HTTP client for one control plane (http.client, loopback only)."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        """Send one request; `body` may be raw bytes/str or data to encode as JSON."""
        sent = dict(headers or {})
        if token or self.token:
            sent.setdefault("Authorization", f"Bearer {token or self.token}")
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        self.connection.request(method, path, body=body, headers=sent)
        response = self.connection.getresponse()
        text = response.read().decode()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        decoded = json.loads(text) if answer_headers.get("content-type", "").startswith("application/json") else None
        return Answer(response.status, answer_headers, decoded, text)

    def get(self, path: str, **kwargs: Any) -> Answer:
        """GET `path`."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        """POST `body` to `path`."""
        return self.request("POST", path, body, **kwargs)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


class Gate:
    """A handler that holds every task until opened, so tests can look at a busy runtime."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.handled: list[Any] = []

    def __call__(self, task: Task) -> None:
        """Handle one task: wait for the gate, then record it."""
        self.entered.set()
        self.opened.wait(30)
        self.handled.append(task.payload)


class JobsPlugin:
    """A plugin with one queue `jobs` and a worker whose handler is given by the test."""

    name = "jobs"

    def __init__(self, handler: Callable[[Task], Any] | None = None, tasks: int = 0, concurrency: int = 1,
                 max_attempts: int | None = None) -> None:
        self.handler = handler or (lambda task: None)
        self.tasks = tasks
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.queue: Any = None

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        """Add the `jobs` queue with `tasks` tasks and its worker."""
        self.queue = registry.queue("jobs")
        for n in range(self.tasks):
            self.queue.publish(Task("job", {"n": n}))
        registry.add_worker(QueueWorker("jobs-worker", self.queue, self.handler, concurrency=self.concurrency,
                                        max_attempts=self.max_attempts, poll_timeout=0.05))


def control_settings(**control: Any) -> dict[str, Any]:
    """Settings overrides: control plane on a free port with TOKEN, a short drain budget, quiet tracing."""
    return {"platform": {"shutdown_timeout": 5, "tracing": {"transport": "noop"},
                         "control": {"port": 0, "token": TOKEN, **control}}}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory without PLBA_ variables, so no settings file or token leaks in."""
    import os

    for name in [name for name in os.environ if name.startswith("PLBA_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[RuntimeManager, Http]]]:
    """Start runtimes with their control plane; close them (and their clients) after the test."""
    started: list[tuple[RuntimeManager, Http]] = []

    def start(*plugins: Any, settings: dict[str, Any] | None = None, token: str | None = TOKEN,
              **kwargs: Any) -> tuple[RuntimeManager, Http]:
        runtime = create_runtime(*plugins, settings=settings or control_settings(), **kwargs)
        runtime.start()
        client = Http(runtime.control.port, token)
        started.append((runtime, client))
        return runtime, client

    yield start
    for runtime, client in started:
        client.close()
        runtime.close()


def wait_state(runtime: RuntimeManager, state: str) -> None:
    """Wait until the runtime reaches `state`."""
    wait_for(lambda: runtime.state == state, message=f"runtime state {state!r}")


@pytest.fixture
def gate(serve: Any) -> Iterator[Gate]:
    """A holding handler, opened at the end of the test (before the runtimes are closed)."""
    holding = Gate()
    yield holding
    holding.opened.set()
