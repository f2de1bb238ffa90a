"""The control plane under hostile load, on loopback: idle and slow clients, floods, a hanging health check."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from plba.contracts import WorkerHealth
from plba.hookspecs import hookimpl
from tests.control.conftest import JobsPlugin, control_settings
from tests.helpers import wait_for


def get(port: int, path: str) -> int:
    """GET `path` on a fresh connection, as a probe does; the status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@contextmanager
def connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` open connections that send nothing."""
    opened = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(count)]
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes `sock` within its timeout (the rest of an answer is read on the way)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_probes_answer_while_more_idle_clients_than_the_connection_limit_are_connected(serve) -> None:
    # Given a control plane that accepts at most 32 connections
    runtime, _ = serve(JobsPlugin(), settings=control_settings(connection_limit=32))
    port = runtime.control.port
    # When 100 clients connect and stay silent
    with connections(port, 100) as idle:
        # Then probes on new connections still get their answers
        assert [get(port, "/health/live") for _ in range(5)] == [200] * 5
        assert get(port, "/health/ready") == 200
        # And the connections idle the longest were closed to make room
        idle[0].settimeout(5)
        assert closed_by_server(idle[0])


def test_slow_clients_are_cut_off_after_the_request_timeout_and_probes_still_answer(serve) -> None:
    # Given a control plane giving a client 0.5 s to send a whole request, with room for 32 connections
    runtime, _ = serve(JobsPlugin(), settings=control_settings(connection_limit=32, request_timeout=0.5))
    port = runtime.control.port
    with connections(port, 40) as slow:
        # When 40 clients start a request and send it a byte at a time
        for sock in slow:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(0.1):
                for sock in slow:
                    try:
                        sock.send(b"a")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            # Then probes answer meanwhile, and the slow clients are disconnected
            assert get(port, "/health/live") == 200
            slow[-1].settimeout(10)
            wait_for(lambda: closed_by_server(slow[-1]), message="the slow client to be disconnected")
        finally:
            stop.set()
            trickler.join()


def test_an_idle_keep_alive_connection_is_closed_after_the_channel_timeout(serve) -> None:
    # Given a control plane closing connections idle for half a second
    runtime, _ = serve(JobsPlugin(), settings=control_settings(channel_timeout=0.5))
    # When a client makes one keep-alive request and then says nothing
    with connections(runtime.control.port, 1) as (sock,):
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # Then the server closes it
        assert closed_by_server(sock)


class HangingCheckPlugin:
    """A critical health check that hangs until released, counting its runs."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.runs = 0

    @hookimpl
    def register_health(self, registry: Any) -> None:
        """Add the check."""
        registry.add_health("db", self.check, critical=True)

    def check(self) -> WorkerHealth:
        """Count the run, then hang until released."""
        self.runs += 1
        self.release.wait(30)
        return WorkerHealth("ok")


@pytest.fixture
def hanging(serve) -> Iterator[tuple[HangingCheckPlugin, int]]:
    """A runtime with the hanging check and a long health timeout; the check is released at the end."""
    plugin = HangingCheckPlugin()
    settings = control_settings()
    settings["platform"]["health_timeout"] = 20
    runtime, _ = serve(plugin, settings=settings)
    yield plugin, runtime.control.port
    plugin.release.set()


def test_liveness_and_readiness_answer_while_health_requests_wait_on_a_hanging_check(hanging) -> None:
    # Given a critical health check that hangs, and 20 GET /health waiting on it (more than the request threads)
    plugin, port = hanging
    answers: list[int] = []
    pending = [threading.Thread(target=lambda: answers.append(get(port, "/health"))) for _ in range(20)]
    for thread in pending:
        thread.start()
    wait_for(lambda: plugin.runs == 1, message="the check to start")
    # When liveness and readiness are probed
    live = get(port, "/health/live")
    ready = get(port, "/health/ready")
    # Then both answered while every /health was still waiting: liveness 200, readiness 503 (check unanswered)
    assert (live, ready) == (200, 503)
    assert answers == []
    # And the 20 requests shared one run of the check; released, they all answer 200
    plugin.release.set()
    for thread in pending:
        thread.join()
    assert answers == [200] * 20
    assert plugin.runs == 1


def test_readiness_says_which_check_has_not_answered(hanging) -> None:
    # Given a hanging critical check
    _, port = hanging
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    # When readiness is probed
    connection.request("GET", "/health/ready")
    response = connection.getresponse()
    # Then it is 503 naming the check
    assert response.status == 503
    assert b"db is unhealthy: check has not answered yet" in response.read()
    connection.close()
