"""The registry of actions: every state-changing operation declared once, invoked the same way by every caller.

An action has a name, the role it needs, typed parameters and a handler. `Actions.invoke` is the
one way to run one: it checks the caller's role, validates the parameters, runs the handler,
and writes one audit event whatever happened (allowed, refused, rejected or failed). The HTTP
control plane, the CLI (through it) and the admin console all call `invoke`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from plba.actions.errors import ActionError, InvalidParams, UnknownTarget
from plba.actions.params import Param

if TYPE_CHECKING:
    from plba.actions.loggers import Revert
    from plba.audit import AuditLog

logger = logging.getLogger("plba.actions")

# Roles, each including the one before (DESIGN.md "Admin console, users and roles").
ROLES = ("viewer", "operator", "admin")
# Outcomes of an invocation, as the audit log and the metrics count them.
OK, REFUSED, REJECTED, FAILED = "ok", "refused", "rejected", "failed"


@dataclass(frozen=True)
class Invocation:
    """What a handler gets: the runtime, the target (a queue name, an instance id, ...) and checked parameters."""

    runtime: Any
    target: str | None
    params: dict[str, Any]
    actor: str
    state: ActionState


Handler = Callable[[Invocation], dict[str, Any]]


@dataclass(frozen=True)
class Action:
    """One declared operation.

    `route` is its path under `/actions/` with `<name>` standing for the target
    (`queues/<name>/requeue`); `status` is the HTTP status of a success (202 when the work goes
    on in the background); `target` names what the target is, for messages and the audit log.
    """

    name: str
    role: str
    handler: Handler
    help: str
    params: tuple[Param, ...] = ()
    route: str = ""
    target: str | None = None
    status: int = 200

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"action {self.name}: role must be one of {', '.join(ROLES)}, not {self.role!r}")

    def check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters checked and converted, defaults filled in; InvalidParams naming the field otherwise."""
        declared = {param.name: param for param in self.params}
        unknown = sorted(str(name) for name in params if name not in declared)
        if unknown:
            allowed = ", ".join(declared) or "none"
            raise InvalidParams(f"unknown field(s): {', '.join(unknown)} (allowed: {allowed})")
        checked = {}
        for param in self.params:
            if param.name in params:
                checked[param.name] = param.check(param.name, params[param.name])
            elif param.required:
                raise InvalidParams(f"{param.name} is required: {param.help}")
            else:
                checked[param.name] = param.default
        return checked


class ActionRegistry:
    """The declared actions by name; `action(...)` is a decorator that declares one."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def declare(self, action: Action) -> Action:
        """Add `action`; a second action of the same name is a programming error."""
        if action.name in self._actions:
            raise ValueError(f"action {action.name!r} is declared twice")
        self._actions[action.name] = action
        return action

    def action(self, name: str, *, role: str, route: str, params: tuple[Param, ...] = (),
               target: str | None = None, status: int = 200) -> Callable[[Handler], Handler]:
        """Declare the decorated function as the handler of action `name` (its docstring is the help)."""

        def declare(handler: Handler) -> Handler:
            help_text = (handler.__doc__ or name).strip().splitlines()[0]
            self.declare(Action(name, role, handler, help_text, params, route, target, status))
            return handler

        return declare

    def get(self, name: str) -> Action:
        """The action called `name`; UnknownTarget naming the known ones otherwise."""
        try:
            return self._actions[name]
        except KeyError:
            raise UnknownTarget(f"no action named {name!r} (known: {', '.join(sorted(self._actions))})") from None

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __contains__(self, name: object) -> bool:
        return name in self._actions


# The platform's own actions; the modules of this package declare theirs into it.
PLATFORM_ACTIONS = ActionRegistry()


class Caller(Protocol):
    """Who invokes an action: checks the role (raising whatever refusal fits its channel) and names the actor."""

    remote_addr: str | None

    def authorize(self, role: str) -> str:
        """Return the actor if it holds `role`; raise when it does not (the exception reaches the caller)."""

    def actor_hint(self) -> str:
        """The best known name of the caller after a refusal (`anonymous` when none)."""


@dataclass
class LocalCaller:
    """The command line acting directly on this process: actor `local`, every role."""

    remote_addr: str | None = None

    def authorize(self, role: str) -> str:
        """Always allowed."""
        return "local"

    def actor_hint(self) -> str:
        """`local`."""
        return "local"


@dataclass
class RelayedCaller:
    """An action sent by another instance of the fleet, whose caller was authorized there: its actor, every role."""

    actor: str
    remote_addr: str | None = None

    def authorize(self, role: str) -> str:
        """Allowed: the sending instance checked the role."""
        return self.actor

    def actor_hint(self) -> str:
        """The original actor."""
        return self.actor


@dataclass
class ActionState:
    """What actions keep between invocations in one runtime: the background stop, pending log-level reverts."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop_thread: threading.Thread | None = None
    reverts: dict[str, Revert] = field(default_factory=dict)

    def close(self) -> None:
        """Undo every pending log-level change at once (the runtime is closing), leaving no timer behind."""
        with self.lock:
            pending, self.reverts = list(self.reverts.values()), {}
        for revert in pending:
            revert.undo()


class Actions:
    """The actions of one runtime: the registry bound to the runtime, its audit log and its counters."""

    def __init__(self, runtime: Any, registry: ActionRegistry, audit: AuditLog) -> None:
        self.runtime = runtime
        self.registry = registry
        self.audit = audit
        self.state = ActionState()
        self.counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()

    def invoke(self, name: str, caller: Caller, target: str | None = None,
               params: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Run action `name` for `caller`; returns the handler's answer.

        `params` may be a function that reads them (an HTTP body), called only once the caller is
        authorized, so an unauthorized caller learns nothing from how its body is judged. Raises
        the caller's refusal, an ActionError (with its HTTP status) for bad input or a state that
        does not allow it, or the handler's unexpected error. One audit event is written in every
        case, with the parameters as given (secrets masked).
        """
        action = self.registry.get(name)
        actor = self.authorize(name, caller, target)
        given: dict[str, Any] = {}
        try:
            given = dict((params() if callable(params) else params) or {})
            checked = action.check(given)
            result = action.handler(Invocation(self.runtime, target, checked, actor, self.state))
        except ActionError as exc:
            self._record(action, actor, caller, target, given, REJECTED, exc.message)
            raise
        except Exception as exc:
            self._record(action, actor, caller, target, given, FAILED, f"{type(exc).__name__}: {exc}")
            raise
        self._record(action, actor, caller, target, given, OK, None)
        return result

    def authorize(self, name: str, caller: Caller, target: str | None = None) -> str:
        """The actor when `caller` may invoke action `name`; else the caller's refusal, audited as refused."""
        action = self.registry.get(name)
        try:
            return caller.authorize(action.role)
        except Exception as exc:
            self._record(action, caller.actor_hint(), caller, target, {}, REFUSED, _reason(exc))
            raise

    def join_stop(self, timeout: float) -> None:
        """Wait for a background stop started by the stop action (unless called from it)."""
        thread = self.state.stop_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _record(self, action: Action, actor: str, caller: Caller, target: str | None, params: dict[str, Any],
                outcome: str, detail: str | None) -> None:
        from plba.audit import AuditEvent

        with self._counts_lock:
            self.counts[(action.name, outcome)] += 1
        event = AuditEvent(at=time.time(), actor=actor, action=action.name, target=target, params=params,
                           outcome=outcome, remote_addr=caller.remote_addr, detail=detail)
        self.audit.write(event)


def _reason(exc: BaseException) -> str:
    # werkzeug's HTTP errors keep their one line in `description`.
    return str(getattr(exc, "description", None) or exc or type(exc).__name__)
