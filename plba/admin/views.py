"""The console's pages and buttons: reads reuse the control plane's functions, every button invokes an action."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, Unauthorized

from plba.actions import ActionError, InvalidParams
from plba.actions import instances as fleet
from plba.actions import loggers as logger_levels
from plba.actions import queues as queue_controls
from plba.admin import security
from plba.admin.throughput import bar_chart
from plba.audit import AuditEvent
from plba.config import flatten
from plba.control import auth
from plba.users import InvalidLogin, LoginThrottled, Role

HERE = Path(__file__).parent
DEAD_PAGE = 50
AUDIT_PAGE = 200
# Events read to filter the audit log by actor or action (the newest ones).
AUDIT_SCAN = 5_000
NAV = (("overview", "Overview"), ("workers", "Workers"), ("queues", "Queues"), ("schedules", "Schedules"),
       ("config_page", "Config"), ("loggers_page", "Loggers"), ("plugins_page", "Plugins"), ("audit_page", "Audit"))
# Menu entries only admins see (the pages check the role themselves).
ADMIN_NAV = (("users_page", "Users"),)
# A flash message travels in the session cookie: a refusal repeating a huge input is cut to this length.
MAX_FLASH = 300


def build_console() -> Blueprint:
    """A blueprint with every console page, at `/admin/`."""
    console = Blueprint("console", __name__, url_prefix=security.PREFIX, template_folder="templates")
    console.before_request(_require_session)
    console.register_error_handler(Exception, _error_page)
    console.app_context_processor(_layout_context)
    for rule, view, methods in ROUTES:
        console.add_url_rule(rule, view.__name__, view, methods=methods)
    return console


# -- plumbing ------------------------------------------------------------------------------------


def _runtime() -> Any:
    return current_app.extensions["plba"].runtime


def _require_session() -> Response | None:
    """Every console page needs a logged-in user (also before any API credential is needed); then CSRF."""
    if request.endpoint in ("console.login", "console.static"):
        if request.method == "POST":
            security.csrf.protect()
        return None
    if g.get("user") is None:
        raise Unauthorized("log in first")
    if request.method not in auth.READ_METHODS:
        security.csrf.protect()
    return None


def _layout_context() -> dict[str, Any]:
    if not security.console_request():
        return {}
    admin = current_app.extensions.get("plba.admin")
    user = g.get("user")
    menu = [entry for entry in (admin.menu if admin else []) if user and user.role.includes(entry.role)]
    nav = NAV + ADMIN_NAV if user and user.role.includes(Role.ADMIN) else NAV
    return {"user": user, "nav": nav, "plugin_menu": menu, "csp_nonce": security.nonce(),
            "can": lambda role: bool(user and user.role.includes(Role.parse(role)))}


def _error_page(exc: Exception) -> ResponseReturnValue:
    if isinstance(exc, Unauthorized) and request.method == "GET":
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if not isinstance(exc, HTTPException):
        current_app.logger.exception("console: %s %s failed", request.method, request.path)
        return render_template("error.html", code=500, message="internal error; the runtime's log has the details"), 500
    return render_template("error.html", code=exc.code, message=exc.description), exc.code or 500


def _back(default: str) -> ResponseReturnValue:
    """Redirect to the page the form came from (a console path only), else `default`."""
    return redirect(security.safe_next(request.form.get("back")) if request.form.get("back") else default)


def _invoke(action: str, target: str | None, params: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
            done: Callable[[dict[str, Any]], str]) -> dict[str, Any] | None:
    """Run `action` as the session's user through the action registry (which checks the role and audits).

    The outcome is flashed; the answer is returned, or None when the action refused.
    """
    try:
        answer = _runtime().actions.invoke(action, auth.HttpCaller(), target, params)
    except ActionError as exc:
        message = exc.message if len(exc.message) <= MAX_FLASH else exc.message[:MAX_FLASH - 3] + "..."
        flash(message, "error")
        return None
    flash(done(answer), "ok")
    return answer


def action_view(action: str, view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """Mark `view` as invoking `action`, so the server's body screen checks the role before reading the form."""
    view.plba_action = action  # type: ignore[attr-defined]
    return view


def plugin_action(name: str, role: Role, view: Callable[..., Any]) -> Callable[..., Any]:
    """A plugin's POST handler: role-checked, then audited once with the user as actor."""
    def handler(**kwargs: Any) -> Any:
        principal = auth.require(role)
        actor = principal.actor if principal else "anonymous"
        outcome, detail = "ok", None
        try:
            return view(**kwargs)
        except Exception as exc:
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            _runtime().actions.audit.write(AuditEvent(time.time(), actor, f"admin.{name}", request.path,
                                                      {}, outcome, request.remote_addr, detail))

    handler.__name__ = view.__name__
    handler.__doc__ = view.__doc__
    handler.plba_access = auth.Access(role)  # type: ignore[attr-defined]
    return handler


# -- login -------------------------------------------------------------------------------------


@auth.public
def login() -> ResponseReturnValue:
    """The login form; a POST checks the password (throttled) and starts a fresh session."""
    target = security.safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target, error=None)
    users = current_app.extensions["plba"].accounts().users
    name = request.form.get("username", "")[:64]
    password = request.form.get("password", "")[:1024]
    try:
        user = users.authenticate(name, password)
    except LoginThrottled as exc:
        page = render_template("login.html", next=target, error="too many failed logins; try again later")
        return Response(page, 429, headers={"Retry-After": str(exc.retry_after)})
    except InvalidLogin:
        return render_template("login.html", next=target, error="unknown user or wrong password"), 401
    security.start_session(user)
    return redirect(target)


@auth.public
def logout() -> ResponseReturnValue:
    """End the session (POST, CSRF-checked)."""
    security.end_session()
    return redirect(url_for("console.login"))


@auth.public
def static(filename: str) -> Response:
    """The console's vendored scripts and styles."""
    return send_from_directory(HERE / "static", filename, max_age=0)


# -- pages -------------------------------------------------------------------------------------


def _overview_data() -> dict[str, Any]:
    runtime = _runtime()
    status = runtime.status()
    return {"status": status, "health": runtime.health(), "instances": fleet.instances(runtime),
            "queues": queue_controls.readings(runtime), "chart": bar_chart(status["throughput"])}


@auth.requires(Role.VIEWER)
def overview() -> str:
    """State, health, instances, throughput of the last hour and queue depths, refreshed by htmx."""
    return render_template("overview.html", **_overview_data())


@auth.requires(Role.VIEWER)
def overview_live() -> str:
    """The overview's live part alone, for htmx polling."""
    return render_template("_overview_live.html", **_overview_data())


@auth.requires(Role.VIEWER)
def workers() -> str:
    """Each worker's state, counters, restarts and last error."""
    return render_template("workers.html", workers=_runtime().status()["workers"])


@auth.requires(Role.VIEWER)
def queues() -> str:
    """Every queue's depths, with pause and resume."""
    return render_template("queues.html", queues=queue_controls.readings(_runtime()))


@auth.requires(Role.VIEWER)
def queue(name: str) -> ResponseReturnValue:
    """Queue `name`'s dead tasks, one page at a time (the cursor), with retry and purge."""
    runtime = _runtime()
    try:
        page = queue_controls.dead_letters(runtime, name, DEAD_PAGE, request.args.get("cursor") or None)
    except ActionError as exc:
        return render_template("error.html", code=exc.status, message=exc.message), exc.status
    stats = queue_controls.readings(runtime).get(name, {})
    for task in page["tasks"]:
        task["payload_text"] = json.dumps(task["payload"], indent=1, default=str)[:2000]
    return render_template("queue.html", name=name, page=page, stats=stats, cursor=request.args.get("cursor"))


def queue_retry(name: str) -> ResponseReturnValue:
    """Move the chosen dead tasks (`id`, repeated) or all of them (`all=1`) back to the queue."""
    ids = request.form.getlist("id")
    params: dict[str, Any] = {"all": True} if request.form.get("all") == "1" else {"ids": ids}
    _invoke("queues.requeue", name, params, lambda answer: f"{answer['moved']} task(s) moved back to {name}")
    return _back(url_for("console.queue", name=name))


def queue_purge(name: str) -> ResponseReturnValue:
    """Delete the queue's dead (or ready) tasks, once the queue's name has been typed to confirm."""
    what = request.form.get("what", "dead")

    def params() -> dict[str, Any]:
        # Read after the role check, so a viewer is refused (403) whatever the form says.
        if request.form.get("confirm") != name:
            raise InvalidParams(f"type the queue's name ({name}) to confirm the purge; nothing was deleted")
        return {"what": what}

    _invoke("queues.purge", name, params, lambda answer: f"{answer['removed']} {what} task(s) deleted")
    return redirect(url_for("console.queue", name=name))


def queue_pause(name: str) -> ResponseReturnValue:
    """Pause or resume the queue (`do=pause|resume`)."""
    action = "queues.resume" if request.form.get("do") == "resume" else "queues.pause"
    _invoke(action, name, {}, lambda answer: f"{name} {'paused' if answer['paused'] else 'resumed'}")
    return redirect(url_for("console.queues"))


@auth.requires(Role.VIEWER)
def schedules() -> str:
    """Every schedule's timing, next and last run, with run now."""
    scheduler = _runtime().scheduler
    return render_template("schedules.html", schedules=scheduler.schedules() if scheduler else [])


def schedule_run(name: str) -> ResponseReturnValue:
    """Fire the schedule once now."""
    _invoke("schedules.run", name, {}, lambda answer: f"{name} fired")
    return redirect(url_for("console.schedules"))


@auth.requires(Role.VIEWER)
def trace(trace_id: str) -> str:
    """One trace as a tree, from the jsonl transport's file."""
    from plba.admin.traces import trace_tree

    tree, note = trace_tree(_runtime().settings, trace_id)
    return render_template("trace.html", trace_id=trace_id, tree=tree, note=note)


@auth.requires(Role.VIEWER)
def config_page() -> str:
    """The settings in force, masked, with the layer each key came from."""
    manager = _runtime().config
    flat = flatten(manager.masked())
    origins = manager.origins()
    return render_template("config.html", rows=[(key, flat[key], origins.get(key, "default")) for key in sorted(flat)])


@auth.requires(Role.VIEWER)
def loggers_page() -> str:
    """Logger levels, with a temporary change for operators."""
    runtime = _runtime()
    return render_template("loggers.html", loggers=logger_levels.levels(runtime, runtime.actions.state))


def logger_set() -> ResponseReturnValue:
    """Set a logger's level, reverting after the given minutes."""
    params: dict[str, Any] = {"logger": request.form.get("logger", ""), "level": request.form.get("level", "")}
    minutes = request.form.get("minutes", "")
    if minutes.isdigit() and int(minutes) > 0:
        params["revert_after"] = int(minutes) * 60
    _invoke("loggers", None, params, lambda answer: f"{params['logger']} set to {params['level']}")
    return redirect(url_for("console.loggers_page"))


@auth.requires(Role.VIEWER)
def plugins_page() -> str:
    """The plugins as `plba plugins list` shows them."""
    return render_template("plugins.html", plugins=[info.to_dict() for info in _runtime().plugins.infos])


@auth.requires(Role.VIEWER)
def audit_page() -> str:
    """The latest audit events, newest first, filtered by actor and action."""
    actor, action = request.args.get("actor", "").strip(), request.args.get("action", "").strip()
    events = _runtime().actions.audit.recent(AUDIT_SCAN if actor or action else AUDIT_PAGE)
    shown = [event.to_dict() for event in events
             if (not actor or event.actor == actor) and (not action or event.action.startswith(action))][:AUDIT_PAGE]
    return render_template("audit.html", events=shown, actor=actor, action=action)


# -- users and tokens ----------------------------------------------------------------------------


def _users_context() -> dict[str, Any]:
    accounts = current_app.extensions["plba"].accounts()
    tokens = accounts.tokens.list()
    active = Counter(info.user for info in tokens if info.state == "active")
    return {"users": [{**user.to_dict(), "tokens": active[user.name]} for user in accounts.users.list()],
            "tokens": [info.to_dict() for info in tokens], "roles": [str(role) for role in Role]}


@auth.requires(Role.ADMIN)
def users_page() -> str:
    """Users with their roles and active tokens, and every token's state; add, change, remove, create, revoke."""
    return render_template("users.html", new_token=None, **_users_context())


def user_add() -> ResponseReturnValue:
    """Add a user; the password, typed twice, is read from the POST body only."""
    def params() -> dict[str, Any]:
        password = request.form.get("password", "")
        if request.form.get("password2", "") != password:
            raise InvalidParams("the two passwords do not match")
        return {"name": request.form.get("name", ""), "role": request.form.get("role", ""), "password": password}

    _invoke("users.add", None, params, lambda answer: f"added user {answer['name']} ({answer['role']})")
    return redirect(url_for("console.users_page"))


def user_role(name: str) -> ResponseReturnValue:
    """Give the user another role; an admin who gives up their own is sent to the overview (Users is not theirs now)."""
    answer = _invoke("users.set_role", name, {"role": request.form.get("role", "")},
                     lambda answer: f"{name} now has the {answer['role']} role")
    if answer and name == g.user.name and answer["role"] != Role.ADMIN:
        return redirect(url_for("console.overview"))
    return redirect(url_for("console.users_page"))


def user_remove(name: str) -> ResponseReturnValue:
    """Remove the user, once their name has been typed to confirm."""
    def params() -> dict[str, Any]:
        if request.form.get("confirm") != name:
            raise InvalidParams(f"type the user's name ({name}) to confirm the removal; nothing was removed")
        return {}

    _invoke("users.remove", name, params, lambda answer: f"removed user {name}, their sessions and tokens")
    return redirect(url_for("console.users_page"))


def token_create(name: str) -> ResponseReturnValue:
    """Create a token for the user and show it on this answer's page only: never in a flash message or the cookie."""
    days = request.form.get("expires_days", "").strip()
    # Digits become a number for the action's check; anything else goes as given, for it to refuse by name.
    params = {"expires_days": int(days) if days.isdigit() and len(days) <= 9 else days or None}
    answer = _invoke("tokens.create", name, params,
                     lambda answer: f"created token {answer['id']} for {name}; copy it now, it is shown only once")
    if answer is None:
        return redirect(url_for("console.users_page"))
    return render_template("users.html", new_token=answer, **_users_context())


def token_revoke(name: str) -> ResponseReturnValue:
    """Revoke the token whose id is `name`."""
    _invoke("tokens.revoke", name, {}, lambda answer: f"revoked token {answer['id']} of {answer['user']}")
    return redirect(url_for("console.users_page"))


ROUTES: tuple[tuple[str, Callable[..., Any], list[str]], ...] = (
    ("/login", login, ["GET", "POST"]),
    ("/logout", logout, ["POST"]),
    ("/static/<path:filename>", static, ["GET"]),
    ("/", overview, ["GET"]),
    ("/overview/live", overview_live, ["GET"]),
    ("/workers", workers, ["GET"]),
    ("/queues", queues, ["GET"]),
    ("/queues/<name>", queue, ["GET"]),
    ("/queues/<name>/retry", action_view("queues.requeue", queue_retry), ["POST"]),
    ("/queues/<name>/purge", action_view("queues.purge", queue_purge), ["POST"]),
    ("/queues/<name>/pause", action_view("queues.pause", queue_pause), ["POST"]),
    ("/schedules", schedules, ["GET"]),
    ("/schedules/<name>/run", action_view("schedules.run", schedule_run), ["POST"]),
    ("/traces/<trace_id>", trace, ["GET"]),
    ("/config", config_page, ["GET"]),
    ("/loggers", loggers_page, ["GET"]),
    ("/loggers/set", action_view("loggers", logger_set), ["POST"]),
    ("/plugins", plugins_page, ["GET"]),
    ("/audit", audit_page, ["GET"]),
    ("/users", users_page, ["GET"]),
    ("/users/add", action_view("users.add", user_add), ["POST"]),
    ("/users/<name>/role", action_view("users.set_role", user_role), ["POST"]),
    ("/users/<name>/remove", action_view("users.remove", user_remove), ["POST"]),
    ("/users/<name>/tokens", action_view("tokens.create", token_create), ["POST"]),
    ("/users/tokens/<name>/revoke", action_view("tokens.revoke", token_revoke), ["POST"]),
)
