"""The waitress server's life: binding, the real port, clean stops with keep-alive clients, no leaks."""

from __future__ import annotations

import http.client
import socket
import sys
import threading

import pytest

from plba import create_runtime
from plba.control.server import ControlServer
from plba.errors import ControlPlaneError
from tests.control.conftest import Http, JobsPlugin, control_settings
from tests.helpers import wait_for


def _control_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("plba-control", "waitress"))}


def _port_is_free(port: int) -> bool:
    # Connections the server closed linger in TIME_WAIT; like waitress, a new listener reuses them.
    # What must be gone is the listening socket, which would still make this bind fail.
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def test_port_zero_binds_a_free_port_that_is_logged_and_exposed(caplog) -> None:
    # Given settings asking for any free port
    runtime = create_runtime(JobsPlugin(), settings=control_settings())
    # When the runtime starts
    with caplog.at_level("INFO", logger="plba.control"), runtime:
        # Then the real port is exposed, in the URL and in the log, and answers
        port = runtime.control.port
        assert port > 0
        assert runtime.control.url == f"http://127.0.0.1:{port}"
        assert f"control plane listening on http://127.0.0.1:{port}" in caplog.text
        assert Http(port).get("/health").status == 200


def test_a_taken_port_fails_start_at_once_with_a_clear_error() -> None:
    # Given a port another process listens on
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    runtime = create_runtime(JobsPlugin(), settings=control_settings(port=port))
    try:
        # When the runtime starts
        with pytest.raises(ControlPlaneError) as raised:
            runtime.start()
        # Then the error says which address and why, with exit code 2
        assert str(raised.value).startswith(f"control plane: cannot listen on 127.0.0.1:{port}: address already in use")
        assert raised.value.exit_code == 2
    finally:
        runtime.close()
        holder.close()


def test_stop_leaves_no_thread_or_port_even_with_a_keep_alive_client_connected() -> None:
    # Given a running control plane and a keep-alive client that made a request and stays connected
    before = _control_threads()
    runtime = create_runtime(JobsPlugin(), settings=control_settings())
    runtime.start()
    port = runtime.control.port
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    client.request("GET", "/health")
    response = client.getresponse()
    response.read()
    assert response.getheader("Connection", "keep-alive").lower() != "close"
    # When the runtime is closed
    runtime.close()
    # Then no control thread is left, the port is free again, and the client's connection was closed
    assert _control_threads() <= before
    assert _port_is_free(port)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        client.request("GET", "/health")
        client.getresponse().read()
    client.close()


def test_stop_after_a_remote_stop_leaves_nothing_behind() -> None:
    # Given a runtime stopped through its own control plane
    before = _control_threads()
    runtime = create_runtime(JobsPlugin(tasks=2), settings=control_settings())
    runtime.start()
    port = runtime.control.port
    http_client = Http(port, control_settings()["platform"]["control"]["token"])
    assert http_client.post("/actions/stop").status == 202
    wait_for(lambda: runtime.state == "stopped")
    # When it is closed
    runtime.close()
    # Then the background stop thread and the server threads are gone and the port is free
    assert _control_threads() <= before
    assert _port_is_free(port)
    http_client.close()


def test_no_control_plane_when_disabled_by_settings_or_by_the_embedder() -> None:
    # Given one runtime with platform.control.enabled = false and one built with enable_http_control=False
    by_settings = create_runtime(JobsPlugin(), settings=control_settings(enabled=False))
    by_code = create_runtime(JobsPlugin(), settings=control_settings(), enable_http_control=False)
    # When they start, then neither serves HTTP
    for runtime in (by_settings, by_code):
        with runtime:
            assert runtime.control is None


def test_stop_is_safe_while_request_threads_wake_the_loop() -> None:
    """Regression: the loop could run the closing thunk before stop() had written to the trigger (EBADF)."""
    # Given a control server, and a thread pulling its trigger as request threads do when they finish,
    # with thread switches made very frequent so the interleaving that broke shows up within the cycles
    runtime = create_runtime(JobsPlugin(), settings=control_settings(), enable_http_control=False)
    runtime.start()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for _ in range(300):
            control = ControlServer(runtime)
            control.start()
            server, loop = control._server, control._thread

            def pull(server=server, loop=loop) -> None:
                while loop.is_alive():
                    try:
                        server.trigger.pull_trigger()
                    except OSError:
                        # Once the loop has ended its trigger is closed; unlike request threads,
                        # which stop() waits for, this thread may still be pulling by then.
                        assert not loop.is_alive()
                        return

            puller = threading.Thread(target=pull)
            puller.start()
            # When it is stopped, then the stop completes without an error, every time
            control.stop()
            puller.join()
            assert not loop.is_alive()
    finally:
        sys.setswitchinterval(previous)
        runtime.close()


def test_repeated_start_stop_cycles_with_clients_connected_leave_nothing_behind() -> None:
    # Given a runtime started and stopped again and again while a client keeps probing it
    before = _control_threads()
    for _ in range(20):
        runtime = create_runtime(JobsPlugin(), settings=control_settings())
        runtime.start()
        port = runtime.control.port
        done = threading.Event()

        def probe(port=port, done=done) -> None:
            while not done.is_set():
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    connection.request("GET", "/health/live")
                    connection.getresponse().read()
                    connection.close()
                except (OSError, http.client.HTTPException):
                    return

        prober = threading.Thread(target=probe)
        prober.start()
        # When it is closed, then it closes without an error and frees its port
        runtime.close()
        done.set()
        prober.join()
        assert _port_is_free(port)
    # And no control thread is left
    assert _control_threads() <= before
