"""The control plane's Flask application: the read endpoints, and one `POST /actions/...` route per declared action."""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RoutingException

from plba.actions import ActionError, Actions, InvalidParams
from plba.actions import instances as fleet
from plba.actions import loggers as logger_levels
from plba.actions import queues as queue_controls
from plba.config import MASK, flatten, settings_dict
from plba.control import auth, configured_token
from plba.users import Accounts, Role

if TYPE_CHECKING:
    from plba.control.waitress_ext import Refusal

logger = logging.getLogger("plba.control")

# Rows a list endpoint (`/audit`) returns at most, and by default.
MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
# Secret values shorter than this are not scrubbed from responses: replacing them would garble text.
MIN_SECRET_LENGTH = 4

control = Blueprint("control", __name__)


def create_app(runtime: Any) -> Flask:
    """The control plane of `runtime`: core endpoints plus each plugin's `register_routes` blueprint."""
    app = Flask("plba.control")
    # waitress refuses bigger bodies before reading them; this covers other servers and test clients.
    app.config.update(MAX_CONTENT_LENGTH=int(runtime.settings.get("platform.control.max_body")))
    app.extensions["plba"] = ControlState(runtime)
    app.before_request(_authorize)
    app.register_error_handler(Exception, _error_response)
    app.register_blueprint(control)
    register_action_routes(app, runtime.actions)
    register_plugin_routes(app, runtime)
    if runtime.settings.get("platform.admin.enabled", False):
        from plba.admin import install

        install(app, runtime)
    return app


class ControlState:
    """What the endpoints share: the runtime and readings of the settings."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._guard_of: Any = None
        self._guard: Guard | None = None
        self._accounts: tuple[Guard, Accounts] | None = None

    def guard(self) -> Guard:
        """Token, protect_reads and secret values of the settings in force, read again after a reload.

        Cached because a dynaconf lookup costs more than the rest of a `/health` request.
        """
        settings = self.runtime.settings
        if settings is not self._guard_of or self._guard is None:
            self._guard = Guard.read(settings, self.runtime.config)
            self._guard_of = settings
        return self._guard

    def service_token(self) -> str | None:
        """`platform.control.token` in force, or None."""
        return self.guard().token

    def protect_reads(self) -> bool:
        """`platform.control.protect_reads` in force."""
        return self.guard().protect_reads

    def accounts(self) -> Accounts:
        """The users and tokens of the runtime's platform database, built again after a reload."""
        guard = self.guard()
        if self._accounts is None or self._accounts[0] is not guard:
            settings = self.runtime.settings
            self._accounts = (guard, Accounts.from_settings(settings, self.runtime.database))
        return self._accounts[1]

    def join_stop(self, timeout: float) -> None:
        """Wait for a background stop started by the stop action (unless called from it)."""
        self.runtime.actions.join_stop(timeout)


@dataclass(frozen=True)
class Guard:
    """The settings the request plumbing needs on every request."""

    token: str | None
    protect_reads: bool
    secrets: tuple[str, ...]

    @classmethod
    def read(cls, settings: Any, config: Any) -> Guard:
        """Read them from `settings`; secrets are the JSON-escaped values of secret keys."""
        values = {value for key, value in flatten(settings_dict(settings)).items()
                  if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and config.is_secret(key)}
        # Longest first, so a secret containing another is replaced whole.
        secrets = tuple(sorted((json.dumps(v)[1:-1] for v in values), key=len, reverse=True))
        return cls(configured_token(settings), bool(settings.get("platform.control.protect_reads", False)),
                   secrets)


def register_action_routes(app: Flask, actions: Actions) -> None:
    """One `POST /actions/<route>` per declared action, each calling `actions.invoke` (which authorizes and audits)."""
    for action in actions.registry:
        app.add_url_rule(f"/actions/{action.route}", endpoint=f"action:{action.name}",
                         view_func=_action_view(action.name, action.status), methods=["POST"])


def _action_view(action: str, success: int) -> Callable[..., Response]:
    def view(name: str | None = None) -> Response:
        answer = _runtime().actions.invoke(action, auth.HttpCaller(), name, _json_object)
        return reply(answer, success)

    # The action authorizes itself, so that a refusal is audited like everything else.
    view.plba_action = action  # type: ignore[attr-defined]
    view.__doc__ = f"Invoke the {action} action."
    return view


def register_plugin_routes(app: Flask, runtime: Any) -> None:
    """Mount a blueprint at `/plugins/<name>/` for each plugin implementing `register_routes`.

    A plugin whose hook raises (or whose routes cannot be added) is logged and left out; the
    control plane and the other plugins' routes still serve.
    """
    for info, call in runtime.plugins.callers("register_routes"):
        # The plugin's own module as import name, so the blueprint finds the plugin's templates and static files.
        import_name = getattr(info.plugin, "__name__", None) if inspect.ismodule(info.plugin) else None
        blueprint = Blueprint(f"plugin_{re.sub(r'[^0-9A-Za-z_]', '_', info.name)}",
                              import_name or type(info.plugin).__module__, url_prefix=f"/plugins/{info.name}")
        try:
            call(blueprint=blueprint, runtime=runtime)
            app.register_blueprint(blueprint)
        except Exception as exc:  # noqa: BLE001 - a plugin's routes must never break the control plane
            logger.error("plugin %s: register_routes failed, its endpoints are not served: %s: %s",
                         info.name, type(exc).__name__, exc)


# -- reads -------------------------------------------------------------------------------------


@control.get("/health")
@auth.public
def health() -> Response:
    """Overall health and each component; 503 when unhealthy."""
    report = _runtime().health()
    return reply(report, 503 if report["status"] == "unhealthy" else 200)


@control.get("/health/live")
@auth.public
def live() -> Response:
    """200 while the process makes progress, else 503."""
    ok, reason = _runtime().live()
    return reply({"live": ok, "reason": reason}, 200 if ok else 503)


@control.get("/health/ready")
@auth.public
def ready() -> Response:
    """200 only when started, not stopping, and every critical component is ok; else 503."""
    ok, reason = _runtime().ready()
    return reply({"ready": ok, "reason": reason}, 200 if ok else 503)


@control.get("/status")
@auth.requires(Role.VIEWER)
def status() -> Response:
    """State, workers, queues and plugins."""
    return reply(_runtime().status())


@control.get("/plugins")
@auth.requires(Role.VIEWER)
def plugins() -> Response:
    """The same objects as `plba plugins list --json`."""
    return reply([info.to_dict() for info in _runtime().plugins.infos])


@control.get("/metrics")
@auth.requires(Role.VIEWER, scrape=True)
def metrics() -> Response:
    """Prometheus text format."""
    from plba.control.metrics import CONTENT_TYPE, render

    return Response(render(_runtime()), content_type=CONTENT_TYPE)


@control.get("/queues")
@auth.requires(Role.VIEWER)
def queues() -> Response:
    """Every queue's backend, depth, in flight, delayed, dead and paused."""
    return reply({"queues": queue_controls.readings(_runtime())})


@control.get("/queues/<name>/dead")
@auth.requires(Role.VIEWER)
def dead(name: str) -> Response:
    """Queue `name`'s dead letters, oldest first, payloads masked; `?limit=N`, `?cursor=` for the next page."""
    limit = _limit(queue_controls.DEFAULT_DEAD_PAGE, queue_controls.MAX_DEAD_PAGE)
    return reply(queue_controls.dead_letters(_runtime(), name, limit, request.args.get("cursor") or None))


@control.get("/instances")
@auth.requires(Role.VIEWER)
def instances() -> Response:
    """Every live instance sharing `platform.cluster.url` (just this one without it)."""
    return reply({"instances": fleet.instances(_runtime())})


@control.get("/loggers")
@auth.requires(Role.VIEWER)
def loggers() -> Response:
    """The platform's and plugins' loggers: own level, level in effect, pending revert."""
    runtime = _runtime()
    return reply({"loggers": logger_levels.levels(runtime, runtime.actions.state)})


@control.get("/config")
@auth.requires(Role.VIEWER)
def config() -> Response:
    """The settings in force, secrets masked, and the layer each key came from."""
    manager = _runtime().config
    return reply({"settings": manager.masked(), "origins": manager.origins()})


@control.get("/audit")
@auth.requires(Role.VIEWER)
def audit() -> Response:
    """The latest audit events, newest first (`?limit=N`)."""
    events = _runtime().actions.audit.recent(_limit(DEFAULT_LIMIT, MAX_LIMIT))
    return reply({"events": [event.to_dict() for event in events]})


@control.get("/schedules")
def schedules() -> Response:
    """Every schedule: timing, enabled, next and last run, last outcome and error, counters."""
    scheduler = _runtime().scheduler
    return reply({"schedules": scheduler.schedules() if scheduler else []})


@control.get("/openapi.json")
@auth.requires(Role.VIEWER)
def openapi() -> Response:
    """The OpenAPI document of these endpoints."""
    from plba.control.openapi import document

    return reply(document())


# -- request plumbing --------------------------------------------------------------------------


def _json_object() -> dict[str, Any]:
    """The JSON object body; empty means `{}`; InvalidParams (400) for anything else."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidParams("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidParams("the body must be a JSON object")
    return body


def _limit(default: int, maximum: int) -> int:
    """The `?limit=N` query argument: a whole number from 1 to `maximum`; 400 otherwise."""
    given = request.args.get("limit")
    if given is None:
        return default
    if not given.isdigit() or not 1 <= int(given) <= maximum:
        raise BadRequest(f"limit must be a whole number from 1 to {maximum}, not {given[:20]!r}")
    return int(given)


def reply(data: Any, code: int = 200) -> Response:
    """A JSON response with every secret value of the settings replaced by a mask."""
    text = json.dumps(data, default=str)
    for secret in _state().guard().secrets:
        text = text.replace(secret, MASK)
    return Response(text, status=code, mimetype="application/json")


def _authorize() -> None:
    # Unknown paths and wrong methods get their 404/405 first: nothing is revealed by them.
    # Actions check their role themselves, when they are invoked.
    view = current_app.view_functions.get(request.endpoint or "")
    if request.routing_exception is not None or hasattr(view, "plba_action"):
        return
    auth.require(auth.access_of(view, request.method))


def refusal_before_body(app: Flask, method: str, path: str, headers: Mapping[str, str],
                        remote_addr: str | None = None) -> Refusal | None:
    """The 401 or 403 the app would answer from these headers alone, so the server never reads the body.

    `headers` are waitress's (upper case, `AUTHORIZATION`). Unknown paths and wrong methods are
    left to the app, which answers them 404 or 405 first. A refused action is audited as the
    request itself would have been.
    """
    from plba.control.waitress_ext import Refusal

    try:
        endpoint, arguments = app.url_map.bind("localhost").match(path, method)
    except (HTTPException, RoutingException):  # 404, 405 or a redirect: the app's to answer
        return None
    view = app.view_functions.get(endpoint)
    credentials = {name: headers[name.upper()] for name in ("Authorization", "Cookie") if name.upper() in headers}
    # The same check the request would meet, run on its headers alone before any body byte is read.
    with app.test_request_context(path, method=method, headers=credentials,
                                  environ_base={"REMOTE_ADDR": remote_addr or ""}):
        try:
            # A console session (its signed cookie) identifies the caller as a bearer token does.
            for identify in app.extensions.get("plba.identify", ()):
                identify()
            action = getattr(view, "plba_action", None)
            if action is not None:
                _runtime().actions.authorize(action, auth.HttpCaller(), arguments.get("name"))
            else:
                auth.require(auth.access_of(view, method))
        except HTTPException as exc:
            headers_out = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
            return Refusal(exc.code or 400, exc.name, exc.description or exc.name, headers_out)
    return None


def _error_response(exc: Exception) -> Response:
    if isinstance(exc, ActionError):
        return reply({"error": exc.message, **exc.extra}, exc.status)
    if not isinstance(exc, HTTPException):
        logger.exception("control plane: %s %s failed", request.method, request.path)
        return reply({"error": "internal error; the runtime's log has the details"}, 500)
    message = exc.description
    if isinstance(exc, NotFound) and request.routing_exception is not None:
        message = f"no such endpoint: {request.path}"
    elif isinstance(exc, MethodNotAllowed):
        message = f"{request.method} is not allowed on {request.path} (allowed: {', '.join(exc.valid_methods or [])})"
    response = reply({"error": message}, exc.code or 500)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _state() -> ControlState:
    return current_app.extensions["plba"]


def _runtime() -> Any:
    return _state().runtime
