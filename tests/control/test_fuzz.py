"""Property: no action body, however odd, makes the control plane answer 5xx or anything but JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plba import RuntimeManager, create_runtime
from tests.control.conftest import TOKEN, Http, JobsPlugin, control_settings, wait_state

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
STOP_FIELDS = st.fixed_dictionaries({}, optional={
    "force": st.booleans() | JSON,
    "timeout": st.none() | st.floats(allow_nan=True) | st.integers(min_value=-10, max_value=10**30) | JSON,
})
BODIES = (st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode())
          | STOP_FIELDS.map(lambda v: json.dumps(v).encode()))


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[RuntimeManager, Http]]:
    """One running runtime for every example: starting a server per example would dominate the run."""
    runtime = create_runtime(JobsPlugin(), settings=control_settings())
    runtime.start()
    client = Http(runtime.control.port, TOKEN)
    yield runtime, client
    client.close()
    runtime.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/actions/stop", "/actions/start", "/actions/reload"]), body=BODIES,
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
def test_action_bodies_never_cause_a_server_error(target, path, body, content_type) -> None:
    # Given a running runtime
    runtime, http = target
    # When an arbitrary body is posted to an action
    answer = http.post(path, body, headers={"Content-Type": content_type})
    # Then the answer is a JSON client error or a success, never a 5xx
    assert answer.status < 500, answer.text
    assert answer.headers["content-type"] == "application/json"
    if answer.status >= 400:
        assert isinstance(answer.body["error"], str)
    # And a stop that was accepted is undone, so the next example meets a running runtime
    if path == "/actions/stop" and answer.status == 202:
        wait_state(runtime, "stopped")
        assert http.post("/actions/start").status == 202
