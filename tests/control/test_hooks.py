"""The `register_routes` hook: plugin endpoints under /plugins/<name>/, isolated from each other's failures."""

from __future__ import annotations

from flask import jsonify, request

from plba import hookimpl
from tests.control.conftest import JobsPlugin


class OrdersPlugin:
    """A plugin adding two endpoints and reading the runtime it is given."""

    name = "orders"

    @hookimpl
    def register_routes(self, blueprint, runtime) -> None:
        """Add GET /summary and POST /replay."""

        @blueprint.get("/summary")
        def summary():
            return jsonify({"state": runtime.state, "plugin": "orders"})

        @blueprint.post("/replay")
        def replay():
            return jsonify({"replayed": request.get_json()["id"]}), 202


class BrokenRoutesPlugin:
    """A plugin whose hook raises halfway through adding routes."""

    name = "broken"

    @hookimpl
    def register_routes(self, blueprint, runtime) -> None:
        """Add one route, then fail."""
        blueprint.add_url_rule("/half", "half", lambda: "never served")
        raise RuntimeError("cannot load templates")


class CrashingEndpointPlugin:
    """A plugin whose endpoint raises."""

    name = "crashy"

    @hookimpl
    def register_routes(self, blueprint, runtime) -> None:
        """Add an endpoint that fails with a secret-looking internal message."""

        @blueprint.get("/boom")
        def boom():
            raise KeyError("internal detail /srv/app/secret.py")


def test_hook_register_routes(serve) -> None:
    # Given a plugin implementing register_routes
    _, http = serve(OrdersPlugin(), JobsPlugin())
    # When its endpoints are called under /plugins/<name>/
    summary = http.get("/plugins/orders/summary")
    replay = http.post("/plugins/orders/replay", {"id": 7})
    # Then they answer with the runtime they were given; the core endpoints are unaffected
    assert (summary.status, summary.body) == (200, {"state": "idle", "plugin": "orders"})
    assert (replay.status, replay.body) == (202, {"replayed": 7})
    assert http.get("/health").status == 200


def test_plugin_endpoints_that_change_things_need_the_token(serve) -> None:
    # Given a plugin with a POST endpoint
    _, http = serve(OrdersPlugin(), token=None)
    # When it is posted without a token, then it is 401 like the core actions; GETs stay open
    assert http.post("/plugins/orders/replay", {"id": 1}).status == 401
    assert http.get("/plugins/orders/summary").status == 200


def test_a_plugin_whose_hook_fails_is_logged_and_skipped(serve, caplog) -> None:
    # Given a broken plugin next to a working one
    with caplog.at_level("ERROR", logger="plba.control"):
        _, http = serve(BrokenRoutesPlugin(), OrdersPlugin())
    # When the control plane serves
    # Then the broken plugin's routes are absent (none half-added), the other's work, and the failure is logged
    assert http.get("/plugins/broken/half").status == 404
    assert http.get("/plugins/orders/summary").status == 200
    assert http.get("/status").status == 200
    assert "plugin broken: register_routes failed" in caplog.text
    assert "cannot load templates" in caplog.text


def test_a_failing_plugin_endpoint_is_a_json_500_without_internals(serve, caplog) -> None:
    # Given a plugin endpoint that raises
    _, http = serve(CrashingEndpointPlugin())
    # When it is called
    with caplog.at_level("ERROR", logger="plba.control"):
        answer = http.get("/plugins/crashy/boom")
    # Then it is a JSON 500 that hides the exception (which goes to the log)
    assert answer.status == 500
    assert answer.body == {"error": "internal error; the runtime's log has the details"}
    assert "secret.py" not in answer.text
    assert "secret.py" in caplog.text


def test_a_class_style_module_adds_routes_through_register_routes(serve) -> None:
    # Given an ApplicationModule that overrides register_routes
    from plba import ApplicationModule

    class Reports(ApplicationModule):
        name = "reports"

        def register(self, registry) -> None:
            pass

        def register_routes(self, blueprint, runtime) -> None:
            blueprint.add_url_rule("/latest", "latest", lambda: jsonify({"month": "2026-11"}))

    _, http = serve(Reports())
    # When its endpoint is called
    response = http.get("/plugins/reports/latest")
    # Then the module's route answers
    assert response.status == 200 and response.body == {"month": "2026-11"}
