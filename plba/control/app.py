"""The control plane's Flask application: health, status, metrics, plugins, schedules and the actions."""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RoutingException

from plba.config import MASK, settings_dict
from plba.control import auth, configured_token
from plba.errors import PlbaError, ProblemsError
from plba.users import Accounts, Role

if TYPE_CHECKING:
    from plba.control.waitress_ext import Refusal

logger = logging.getLogger("plba.control")

# A stop may be given a drain budget of at most a day; more is a typo (and overflows thread joins).
MAX_TIMEOUT = 86_400.0
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
    register_plugin_routes(app, runtime)
    return app


class ControlState:
    """What the endpoints share: the runtime, the background stop thread, and readings of the settings."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.stop_thread: threading.Thread | None = None
        # Serialises stop requests, so two at once start one background drain.
        self.lock = threading.Lock()
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
        """Wait for a background stop started by `POST /actions/stop` (unless called from it)."""
        thread = self.stop_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


@dataclass(frozen=True)
class Guard:
    """The settings the request plumbing needs on every request."""

    token: str | None
    protect_reads: bool
    secrets: tuple[str, ...]

    @classmethod
    def read(cls, settings: Any, config: Any) -> Guard:
        """Read them from `settings`; secrets are the JSON-escaped values of secret keys."""
        values = {value for key, value in _flatten(settings_dict(settings)).items()
                  if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and config.is_secret(key)}
        # Longest first, so a secret containing another is replaced whole.
        secrets = tuple(sorted((json.dumps(v)[1:-1] for v in values), key=len, reverse=True))
        return cls(configured_token(settings), bool(settings.get("platform.control.protect_reads", False)),
                   secrets)


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


# -- actions -----------------------------------------------------------------------------------


@control.post("/actions/stop")
@auth.requires(Role.OPERATOR)
def stop() -> Response:
    """Accept a graceful (or forced) stop: 202, then the drain runs in the background."""
    body = read_body({"force": _boolean, "timeout": _timeout})
    force, timeout = body.get("force", False), body.get("timeout")
    shared = _state()
    runtime = shared.runtime
    with shared.lock:
        state = runtime.state
        if state in ("not_started", "stopped"):
            raise Conflict(f"the runtime is already {state}")
        # Under `run()` this wakes the foreground thread, which exits the process after the drain. A
        # forced request during a drain cuts it short, like a second Ctrl-C.
        runtime.request_stop(force=force, timeout=timeout)
        if state != "stopping" and not (shared.stop_thread and shared.stop_thread.is_alive()):
            # An embedded runtime has nobody waiting on the request, so the drain runs here too. Under
            # `run()` both threads call stop(); the lifecycle lock lets one drain and the other return.
            shared.stop_thread = threading.Thread(target=_stop_quietly, args=(runtime, timeout, force),
                                                  name="plba-control-stop")
            shared.stop_thread.start()
    return reply({"accepted": "stop", "force": force, "timeout": timeout}, 202)


@control.post("/actions/start")
@auth.requires(Role.OPERATOR)
def start() -> Response:
    """Start a stopped runtime again: 202, or 409 when it is not stopped."""
    read_body({})
    runtime = _runtime()
    if runtime.state not in ("stopped", "not_started"):
        raise Conflict(f"the runtime is already {runtime.state}")
    try:
        runtime.start()
    except PlbaError as exc:
        raise Conflict(f"the runtime cannot start: {exc}") from None
    return reply({"accepted": "start", "state": runtime.state}, 202)


@control.post("/actions/reload")
@auth.requires(Role.OPERATOR)
def reload() -> Response:
    """Re-read the configuration: 200 with the changed keys, 422 with every problem when invalid."""
    read_body({})
    try:
        changed = _runtime().reload()
    except ProblemsError as exc:
        return reply({"error": "the new configuration is invalid; the current one stays in force",
                      "problems": exc.problems}, 422)
    return reply({"changed": changed})


@control.post("/actions/schedules/<name>/run")
def run_schedule(name: str) -> Response:
    """Fire schedule `name` once now, in the whole fleet: 202, 404 when unknown, 409 when it cannot run now."""
    read_body({})
    scheduler = _runtime().scheduler
    if scheduler is None or name not in scheduler.names():
        raise NotFound(f"no schedule named {name!r}")
    outcome, firing = scheduler.run_now(name)
    if firing is None:
        reasons = {"running": "its previous run is still going", "duplicate": "it was run in this second already",
                   "stopped": "the runtime is not running"}
        raise Conflict(f"schedule {name!r} not run: {reasons[outcome]}")
    return reply({"accepted": "run", "schedule": name, "scheduled_at": firing.scheduled_at.isoformat()}, 202)


def _stop_quietly(runtime: Any, timeout: float | None, force: bool) -> None:
    try:
        runtime.stop(timeout=timeout, force=force)
    except Exception:  # noqa: BLE001 - nobody waits on this thread, so the log is the only place to say it
        logger.exception("stop requested through the control plane failed")


# -- request plumbing --------------------------------------------------------------------------


def read_body(fields: Mapping[str, Callable[[str, Any], Any]]) -> dict[str, Any]:
    """The JSON object body checked against `fields` (name -> validator); empty means `{}`; 400 otherwise."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        allowed = ", ".join(fields) or "none"
        raise BadRequest(f"unknown field(s): {', '.join(map(str, unknown))} (allowed: {allowed})")
    return {name: fields[name](name, value) for name, value in body.items()}


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def _timeout(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_TIMEOUT:
        raise BadRequest(f"{name} must be null or a number of seconds from 0 to {MAX_TIMEOUT:g}")
    return float(value)


def reply(data: Any, code: int = 200) -> Response:
    """A JSON response with every secret value of the settings replaced by a mask."""
    text = json.dumps(data, default=str)
    for secret in _state().guard().secrets:
        text = text.replace(secret, MASK)
    return Response(text, status=code, mimetype="application/json")


def _authorize() -> None:
    # Unknown paths and wrong methods get their 404/405 first: nothing is revealed by them.
    if request.routing_exception is not None:
        return
    auth.require(auth.access_of(current_app.view_functions.get(request.endpoint), request.method))


def refusal_before_body(app: Flask, method: str, path: str, headers: Mapping[str, str]) -> Refusal | None:
    """The 401 or 403 the app would answer from these headers alone, so the server never reads the body.

    `headers` are waitress's (upper case, `AUTHORIZATION`). Unknown paths and wrong methods are
    left to the app, which answers them 404 or 405 first.
    """
    from plba.control.waitress_ext import Refusal

    try:
        endpoint, _ = app.url_map.bind("localhost").match(path, method)
    except (HTTPException, RoutingException):  # 404, 405 or a redirect: the app's to answer
        return None
    authorization = {"Authorization": headers["AUTHORIZATION"]} if "AUTHORIZATION" in headers else {}
    # The same check the request would meet, run on its headers alone before any body byte is read.
    with app.test_request_context(path, method=method, headers=authorization):
        try:
            auth.require(auth.access_of(app.view_functions.get(endpoint), method))
        except HTTPException as exc:
            headers_out = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
            return Refusal(exc.code or 400, exc.name, exc.description or exc.name, headers_out)
    return None


def _error_response(exc: Exception) -> Response:
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


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, Mapping):
        return {prefix[:-1]: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat
