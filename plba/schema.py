"""Every platform setting, declared once: its name, default, type and meaning.

The defaults the runtime starts from, the validators of `[platform]` and `[log]`, the known keys
that typo warnings compare against, and the README's settings table all come from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dynaconf import Validator

# The Python types each declared type accepts (bool is not a number here, though Python says it is).
TYPES: Mapping[str, tuple[type, ...]] = MappingProxyType({
    "number": (int, float), "integer": (int,), "boolean": (bool,), "string": (str,),
})
QUEUE_PREFIX = "platform.queues"
QUEUE_TEMPLATE = f"{QUEUE_PREFIX}.<name>"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("auto", "rich", "plain", "json")
NO_DEFAULT = None


@dataclass(frozen=True)
class Setting:
    """One setting: dotted name, default (None: unset unless given), type, help, and dynaconf checks."""

    name: str
    default: Any
    type: str
    help: str
    checks: Mapping[str, Any] = field(default_factory=dict)
    # For per-queue settings: the backends that read it (empty: every backend).
    backends: tuple[str, ...] = ()

    def validator(self, prefix: str = "", with_default: bool = False) -> Validator:
        """A dynaconf validator of the type and checks, for the key `prefix + name`."""
        from dynaconf import Validator

        extra: dict[str, Any] = dict(self.checks)
        if with_default and self.default is not NO_DEFAULT:
            extra["default"] = self.default
        return Validator(prefix + self.name, is_type_of=TYPES[self.type], **extra)

    def applies_to(self, backend: str) -> bool:
        """Whether a queue of `backend` reads this per-queue setting."""
        return not self.backends or backend in self.backends


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


PLATFORM_SETTINGS: tuple[Setting, ...] = (
    Setting("platform.shutdown_timeout", 30.0, "number",
            "seconds: one budget for the whole graceful stop, then the rest is forced",
            {"gte": 0}),
    Setting("platform.health_timeout", 5.0, "number",
            "seconds a health check may take before it counts as unhealthy", {"gt": 0}),
    Setting("platform.control.enabled", True, "boolean", "serve the HTTP control plane"),
    Setting("platform.control.host", "127.0.0.1", "string", "listen address (loopback unless you say otherwise)",
            {"len_min": 1}),
    Setting("platform.control.port", 8080, "integer", "listen port; `0` picks a free one and logs it",
            {"gte": 0, "lte": 65535}),
    Setting("platform.control.token", NO_DEFAULT, "string",
            "service bearer token (role admin; keep it in `.secrets.toml`); before any user exists, actions answer 403 "
            "without one",
            {"len_min": 1}),
    Setting("platform.control.protect_reads", False, "boolean",
            "require a credential for the GET endpoints too (`/metrics` included)"),
    Setting("platform.control.stuck_after", 300.0, "number",
            "seconds a worker may hold one task before liveness fails", {"gt": 0}),
    Setting("platform.control.threads", 4, "integer", "threads answering control-plane requests", {"gte": 1}),
    Setting("platform.control.connection_limit", 256, "integer",
            "most open connections; near it the longest-idle ones are closed so probes still get in",
            {"gte": 16, "lte": 10_000}),
    Setting("platform.control.channel_timeout", 30.0, "number", "seconds an idle keep-alive connection stays open",
            {"gt": 0}),
    Setting("platform.control.request_timeout", 10.0, "number",
            "seconds a client may take to send a whole request before it is disconnected", {"gt": 0}),
    Setting("platform.control.max_body", 65536, "integer",
            "largest request body in bytes, refused from its headers before it is read", {"gte": 1024}),
    Setting("platform.startup_timeout", 120.0, "number",
            "seconds `plba run` retries unreachable queue brokers at start before it exits with code 75",
            {"gte": 0}),
    Setting("platform.health_cache", 1.0, "number",
            "seconds one health evaluation is shared by concurrent `/health` and readiness requests", {"gte": 0}),
    Setting("platform.tracing.transport", "log", "string",
            "`log`, `jsonl`, `noop` or `otel` (`pip install plba[otel]`)",
            {"is_in": ["noop", "log", "jsonl", "otel"]}),
    Setting("platform.tracing.path", "var/traces.jsonl", "string", "file for the `jsonl` transport",
            {"len_min": 1}),
    Setting("platform.tracing.exporter", "auto", "string", "`otel` transport: `auto`, `console` or `otlp`",
            {"is_in": ["auto", "console", "otlp"]}),
    Setting("platform.tracing.service_name", "plba", "string", "`otel` transport: the `service.name` resource",
            {"len_min": 1}),
    Setting("platform.supervisor.restart_budget", 5, "integer",
            "restarts allowed within the window before a worker is given up", {"gte": 0}),
    Setting("platform.supervisor.restart_window", 60.0, "number", "seconds over which restarts are counted",
            {"gt": 0}),
    Setting("platform.supervisor.restart_backoff", 0.5, "number",
            "seconds before the first restart (jittered exponential backoff)",
            {"gte": 0}),
    Setting("platform.supervisor.restart_backoff_max", 30.0, "number", "longest wait between restarts",
            {"gte": 0}),
    Setting("platform.supervisor.exit_on_critical_failure", True, "boolean",
            "stop with exit code 1 when a critical worker is given up"),
    Setting("platform.cluster.url", "", "string",
            "a `redis://` or `postgresql://` URL shared by a fleet (heartbeats, slot claims): each schedule slot "
            "fires in one instance; empty: once per process"),
    Setting("platform.cluster.heartbeat_interval", 5.0, "number",
            "seconds between heartbeats; an instance silent for three intervals leaves `GET /instances`",
            {"gt": 0, "lte": 3600}),
    Setting("platform.database", "var/plba.sqlite", "string",
            "the platform database (users, tokens, audit): a SQLite file, relative to the working directory, "
            "created on first use; or a `postgresql://` URL shared by a fleet", {"len_min": 1}),
    Setting("platform.admin.enabled", False, "boolean", "serve the admin console at `/admin/`"),
    Setting("platform.admin.secure_cookies", False, "boolean",
            "mark the console's cookies Secure (turn on behind a TLS proxy)"),
    Setting("platform.admin.session_idle", 1800.0, "number",
            "seconds without a request after which a console session ends", {"gt": 0}),
    Setting("platform.admin.session_max", 43200.0, "number",
            "seconds after login at which a console session ends, however busy", {"gt": 0}),
    Setting("platform.admin.secret_key", NO_DEFAULT, "string",
            "key signing the console's cookies (keep it in `.secrets.toml`); unset: generated once and kept in "
            "the platform database", {"len_min": 32}),
    Setting("platform.admin.login_attempts", 5, "integer",
            "failed logins for one user within the window before logins are refused for the rest of it", {"gte": 1}),
    Setting("platform.admin.login_window", 900.0, "number", "seconds over which failed logins are counted",
            {"gt": 0}),
    Setting("platform.audit.max_events", 100_000, "integer",
            "audit events kept in the platform database; beyond it the oldest are pruned (`0`: no limit)",
            {"gte": 0}),
    Setting("log.level", "INFO", "string", "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`",
            {"cast": _upper, "is_in": list(LOG_LEVELS)}),
    Setting("log.format", "auto", "string",
            "`auto` (`rich` on a terminal, else `plain`), `rich`, `plain` or `json` (one object per line)",
            {"is_in": list(LOG_FORMATS)}),
)

# The keys of each `[platform.queues.<name>]` table: a template, as queue names are the user's.
QUEUE_SETTINGS: tuple[Setting, ...] = (
    Setting("backend", "memory", "string",
            "`memory`, `redis`, `postgres`, or any backend in the `plba.queues` entry-point group; an absent table "
            "means memory"),
    Setting("max_attempts", 5, "integer", "deliveries before the task goes to the dead-letter queue with its error",
            {"gte": 1}),
    Setting("dead_max", 10_000, "integer",
            "dead letters kept; beyond it the oldest are dropped with a warning (`0`: no cap)", {"gte": 0}),
    Setting("maxsize", 10_000, "integer", "most tasks the queue holds; 0 is unbounded", {"gte": 0},
            backends=("memory",)),
    Setting("publish_timeout", 5.0, "number", "seconds a publish waits for room in a full queue", {"gte": 0},
            backends=("memory",)),
    Setting("url", NO_DEFAULT, "string",
            "the server's URL, required: `redis://`, `rediss://` or `unix://` for redis, `postgresql://` for postgres",
            {"len_min": 1}, backends=("redis", "postgres")),
    Setting("visibility_timeout", 60.0, "number",
            "seconds before a task leased by a dead process is delivered again", {"gt": 0},
            backends=("redis", "postgres")),
    Setting("retry_delay", 1.0, "number", "seconds before the first retry of a failed task", {"gte": 0},
            backends=("redis", "postgres")),
    Setting("retry_delay_max", 300.0, "number", "longest retry delay", {"gte": 0}, backends=("redis", "postgres")),
    Setting("prefetch", 20, "integer", "tasks a consumer leases at once", {"gte": 1}, backends=("redis", "postgres")),
    Setting("key_prefix", "plba", "string", "prefix of the queue's Redis keys", {"len_min": 1},
            backends=("redis",)),
    Setting("socket_timeout", 10.0, "number", "seconds a server call may take, and to connect", {"gte": 0.5},
            backends=("redis", "postgres")),
    Setting("schema", "plba", "string", "the PostgreSQL schema holding the queue's tables (created if missing)",
            {"len_min": 1}, backends=("postgres",)),
    Setting("pool_size", 10, "integer", "connections per process and queue, besides the one that listens",
            {"gte": 1}, backends=("postgres",)),
    Setting("poll_interval", 1.0, "number", "longest an idle consumer sleeps without a notification", {"gt": 0},
            backends=("postgres",)),
)

# The keys of each `[platform.schedules."<name>"]` table, overriding a registered schedule by name.
SCHEDULE_PREFIX = "platform.schedules"
SCHEDULE_TEMPLATE = f"{SCHEDULE_PREFIX}.<name>"
SCHEDULE_SETTINGS: tuple[Setting, ...] = (
    Setting("every", NO_DEFAULT, "number", "seconds between slots, replacing the registered timing"),
    Setting("cron", NO_DEFAULT, "string", "a cron expression, replacing the registered timing"),
    Setting("timezone", NO_DEFAULT, "string", "the timezone the cron expression is read in"),
    Setting("enabled", True, "boolean", "`false` keeps the schedule from firing"),
)

SETTINGS_BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in PLATFORM_SETTINGS})
QUEUE_SETTINGS_BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in QUEUE_SETTINGS})
# The top-level tables the platform owns.
PLATFORM_SECTIONS = ("platform", "log")


def defaults() -> dict[str, Any]:
    """The platform's defaults as nested tables (settings without a default are left out)."""
    tree: dict[str, Any] = {}
    for setting in PLATFORM_SETTINGS:
        if setting.default is not NO_DEFAULT:
            set_dotted(tree, setting.name, setting.default)
    tree["platform"]["queues"] = {}
    tree["platform"]["schedules"] = {}
    return tree


def default(name: str) -> Any:
    """The declared default of the platform setting `name` (KeyError for an undeclared one)."""
    return SETTINGS_BY_NAME[name].default


def validators() -> list[Validator]:
    """Validators of the platform's own keys (defaults are already in place, so none are set here)."""
    return [setting.validator() for setting in PLATFORM_SETTINGS]


def queue_validators(name: str, backend: str) -> list[Validator]:
    """Validators of one `[platform.queues.<name>]` table, with the defaults of the keys its backend reads."""
    prefix = f"{QUEUE_PREFIX}.{name}."
    return [setting.validator(prefix, with_default=setting.applies_to(backend)) for setting in QUEUE_SETTINGS]


def known_keys() -> list[str]:
    """Every declared platform key, with `<name>` standing for a queue's name."""
    return ([s.name for s in PLATFORM_SETTINGS] + [f"{QUEUE_TEMPLATE}.{s.name}" for s in QUEUE_SETTINGS]
            + [f"{SCHEDULE_TEMPLATE}.{s.name}" for s in SCHEDULE_SETTINGS])


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts, creating the tables on the way."""
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def markdown_table() -> str:
    """The README's settings table: one row per key with its type, default and meaning."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    named = ([(s.name, s) for s in PLATFORM_SETTINGS] + [(f"{QUEUE_TEMPLATE}.{s.name}", s) for s in QUEUE_SETTINGS]
             + [(f"{SCHEDULE_TEMPLATE}.{s.name}", s) for s in SCHEDULE_SETTINGS])
    for name, setting in named:
        shown = "unset" if setting.default is NO_DEFAULT else f"`{_toml(setting.default)}`"
        meaning = setting.help + (f" ({', '.join(setting.backends)} only)" if setting.backends else "")
        rows.append(f"| `{name}` | {setting.type} | {shown} | {meaning} |")
    return "\n".join(rows) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return f"{value:g}" if isinstance(value, float) else str(value)
