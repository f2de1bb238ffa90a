"""Requests waitress itself answers, over raw sockets: JSON errors that repeat nothing, bodies refused unread."""

from __future__ import annotations

import json
import re
import socket
import tomllib
from importlib.metadata import version

import pytest

from plba.control.waitress_ext import WAITRESS_VERSION
from tests.control.conftest import TOKEN, JobsPlugin
from tests.helpers import REPO

SECRET = "Bearer s3cr3t-in-a-header"
CHUNK = b"4000\r\n" + b"a" * 0x4000 + b"\r\n"


def exchange(port: int, data: bytes, then: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send `data` (and `then` after the first answer bytes, if any), read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            if then:
                sock.sendall(then)
                then = b""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {name.lower(): value for name, value in headers.items()}, body


MALFORMED = {
    "non-ASCII path": ("GET /h\u00e9alth HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400, "Bad URI"),
    "Latin-1 path": (b"GET /h\xe9alth HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad URI"),
    "bad Content-Length": (b"POST /actions/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n", 400,
                           "Content-Length is invalid"),
    "bare CR in a header": (f"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\rX\r\n\r\n".encode(), 400,
                            "Bare CR or LF found in header line"),
    "header line without colon": (f"GET /health HTTP/1.1\r\nHost: x\r\n{SECRET}\r\n\r\n".encode(), 400,
                                  "Invalid header"),
    "folded first header line": (f"GET /health HTTP/1.1\r\n Authorization: {SECRET}\r\n\r\n".encode(), 400,
                                 "Malformed header line"),
    "bad method": (f"G{SECRET} /health HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400, "Start line is invalid"),
    "headers too large": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431,
                          "the request line and headers must be smaller than 32768 bytes"),
    "body too large": (f"POST /actions/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                       f"Content-Length: 1073741824\r\n\r\n".encode(), 413,
                       "the request body must be smaller than 65536 bytes (platform.control.max_body)"),
    "chunked body too large": (f"POST /actions/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                               f"Transfer-Encoding: chunked\r\n\r\n".encode() + CHUNK * 5,
                               413, "the request body must be smaller than 65536 bytes"),
    "bad chunk size": (f"POST /actions/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                       f"Transfer-Encoding: chunked\r\n\r\nzz\r\n".encode(), 400, "Invalid chunk size"),
    "unknown transfer coding": (b"POST /actions/stop HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                                "Transfer-Encoding requested is not supported"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_waitress_errors_are_json_with_their_status_and_repeat_nothing_of_the_request(serve, name) -> None:
    # Given a running control plane
    runtime, _ = serve(JobsPlugin())
    data, status, message = MALFORMED[name]
    # When a request waitress itself refuses arrives
    code, headers, body = exchange(runtime.control.port, data)
    # Then the answer is JSON with the right status, says what is wrong, and quotes nothing sent
    assert code == status
    assert headers["content-type"] == "application/json"
    assert message in json.loads(body)["error"]
    assert b"s3cr3t" not in body and TOKEN.encode() not in body
    assert headers["connection"].lower() == "close"
    assert_safe_headers(headers)


def assert_safe_headers(headers: dict[str, str]) -> None:
    """The headers every answer of the server's own carries (a console path's too)."""
    assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "same-origin"


def test_an_unauthenticated_body_is_refused_from_its_headers_without_inviting_it(serve) -> None:
    # Given a control plane with a token
    runtime, _ = serve(JobsPlugin())
    # When an action announces a body (within max_body) without a token and waits for 100 Continue
    code, headers, body = exchange(runtime.control.port,
                                   b"POST /actions/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n"
                                   b"Expect: 100-continue\r\n\r\n")
    # Then it is answered 401 at once (no 100 Continue first), as JSON with the challenge
    assert code == 401
    assert headers["www-authenticate"].lower().startswith("bearer")
    assert "Authorization: Bearer" in json.loads(body)["error"]
    assert_safe_headers(headers)
    # And the runtime was not stopped
    assert runtime.state != "stopping" and runtime.state != "stopped"


def test_a_body_with_a_wrong_token_is_refused_while_the_client_is_still_sending_it(serve) -> None:
    # Given a control plane with a token
    runtime, _ = serve(JobsPlugin())
    # When a chunked body with a wrong token keeps coming after the headers
    code, _, body = exchange(runtime.control.port,
                             b"POST /actions/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n", then=CHUNK)
    # Then the refusal arrives whole (the connection is not reset under it)
    assert code == 403
    assert json.loads(body) == {"error": "the bearer token does not match platform.control.token"}


def test_bodies_to_unknown_paths_get_404_and_authorized_bodies_are_served(serve) -> None:
    # Given a control plane with a token
    runtime, http = serve(JobsPlugin())
    # When a body goes to an unknown path without a token, then then to reload with the token
    unknown = exchange(runtime.control.port, b"POST /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                             b"Content-Length: 2\r\n\r\n{}")
    reload = http.post("/actions/reload", {})
    # Then the unknown path is a 404 as before, and the authorized body is read and answered
    assert (unknown[0], json.loads(unknown[2])) == (404, {"error": "no such endpoint: /nope"})
    assert reload.status == 200


def test_the_waitress_extension_is_pinned_to_the_version_it_was_written_for() -> None:
    # The extension relies on waitress internals: an upgrade must be a deliberate change here.
    pinned = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"waitress=={WAITRESS_VERSION}" in pinned
    assert version("waitress") == WAITRESS_VERSION
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer

    # The hooks it overrides still exist with the shapes it expects.
    assert HTTPChannel.error_task_class.__name__ == "ErrorTask"
    assert isinstance(HTTPChannel.parser_class, type)
    for name in ("add_task", "readable", "maintenance"):
        assert callable(getattr(BaseWSGIServer, name))
    assert re.fullmatch(r"\d+\.\d+\.\d+", WAITRESS_VERSION)
