"""Layered configuration on dynaconf: files in a fixed order, then `PLBA_` variables, then validation."""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf, Validator
from dynaconf.utils.parse_conf import parse_conf_data
from dynaconf.validator import ValidationError

from plba.errors import ConfigError, PlbaError

logger = logging.getLogger("plba.config")

ENV_PREFIX = "PLBA_"
# Variables that steer the CLI, not settings.
RESERVED_ENV = {"PLBA_LOAD_PLUGINS"}
DEFAULT_FILES = ("settings.toml", "settings.local.toml", ".secrets.toml")
SECRETS_FILE = ".secrets.toml"
SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api_?key|credential|private_?key", re.IGNORECASE)
MASK = "********"
SUPPORTED_SUFFIXES = (".toml", ".yaml", ".yml", ".json")

PLATFORM_DEFAULTS: dict[str, Any] = {
    "platform": {
        "shutdown_timeout": 30.0,
        "health_timeout": 5.0,
        "startup_timeout": 120.0,
        "health_cache": 1.0,
        "control": {"enabled": True, "host": "127.0.0.1", "port": 8080, "protect_reads": False,
                    "stuck_after": 300.0, "threads": 4, "connection_limit": 256, "channel_timeout": 30.0,
                    "request_timeout": 10.0, "max_body": 65536},
        "tracing": {"transport": "log", "path": "var/traces.jsonl"},
        "supervisor": {"restart_budget": 5, "restart_window": 60.0, "restart_backoff": 0.5,
                       "restart_backoff_max": 30.0, "exit_on_critical_failure": True},
        "queues": {},
        "cluster": {"url": ""},
        "schedules": {},
    },
    "log": {"level": "INFO", "format": "auto"},
}

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def platform_validators() -> list[Validator]:
    """Validators for the runtime's own keys."""
    number = (int, float)
    return [
        Validator("platform.shutdown_timeout", is_type_of=number, gte=0),
        Validator("platform.health_timeout", is_type_of=number, gt=0),
        Validator("platform.control.enabled", is_type_of=bool),
        Validator("platform.control.host", is_type_of=str, len_min=1),
        Validator("platform.control.port", is_type_of=int, gte=0, lte=65535),
        Validator("platform.control.stuck_after", is_type_of=number, gt=0),
        Validator("platform.control.protect_reads", is_type_of=bool),
        Validator("platform.control.threads", is_type_of=int, gte=1, lte=256),
        Validator("platform.control.connection_limit", is_type_of=int, gte=16, lte=10_000),
        Validator("platform.control.channel_timeout", is_type_of=number, gt=0),
        Validator("platform.control.request_timeout", is_type_of=number, gt=0),
        Validator("platform.control.max_body", is_type_of=int, gte=1024),
        Validator("platform.startup_timeout", is_type_of=number, gte=0),
        Validator("platform.health_cache", is_type_of=number, gte=0),
        Validator("platform.tracing.transport", is_in=["noop", "log", "jsonl", "otel"]),
        Validator("platform.supervisor.restart_budget", is_type_of=int, gte=0),
        Validator("platform.supervisor.restart_window", is_type_of=number, gt=0),
        Validator("platform.supervisor.exit_on_critical_failure", is_type_of=bool),
        Validator("platform.cluster.url", is_type_of=str),
        Validator("log.level", cast=lambda v: str(v).upper(), is_in=LOG_LEVELS),
        Validator("log.format", is_in=["auto", "rich", "plain", "json"]),
    ]


def queue_problems(settings: Any) -> list[str]:
    """Problems in the `[platform.queues.<name>]` tables, which validators cannot enumerate."""
    problems = []
    for name, table in (settings.get("platform.queues") or {}).items():
        where = f"platform.queues.{name}"
        if not isinstance(table, Mapping):
            problems.append(f"{where}: must be a table")
            continue
        backend = table.get("backend", "memory")
        if backend not in ("memory", "redis"):
            problems.append(f"{where}.backend: must be 'memory' or 'redis', not {backend!r}")
        if backend == "redis" and not str(table.get("url", "")).startswith(("redis://", "rediss://", "unix://")):
            problems.append(f"{where}.url: a redis:// URL is required for the redis backend")
        for key, minimum in (("visibility_timeout", 0), ("max_attempts", 1), ("maxsize", 0)):
            value = table.get(key)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None and (not is_number or value < minimum):
                problems.append(f"{where}.{key}: must be a number >= {minimum}, not {value!r}")
    return problems


class ConfigurationManager:
    """Loads the layers, validates them, masks secrets and reloads on request."""

    def __init__(self, config_files: Iterable[str | os.PathLike] = (), root: str | os.PathLike | None = None,
                 environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> None:
        self.root = Path(root or os.getcwd())
        self.config_files = [self._resolve_user_file(path) for path in config_files]
        self._environ = environ
        self._overrides = copy.deepcopy(dict(overrides or {}))
        self._subscribers: list[Callable[[Any, list[str]], None]] = []
        self._lock = threading.Lock()
        self.secret_keys: set[str] = set()
        self.settings = self._load()

    # -- loading ---------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Every file that takes part, lowest layer first (missing default files are skipped)."""
        defaults = [self.root / name for name in DEFAULT_FILES]
        return [path for path in defaults if path.is_file()] + self.config_files

    def _resolve_user_file(self, path: str | os.PathLike) -> Path:
        resolved = Path(path).expanduser()
        resolved = resolved if resolved.is_absolute() else Path.cwd() / resolved
        if not resolved.is_file():
            raise ConfigError(f"{path}: configuration file not found")
        if resolved.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise ConfigError(f"{path}: unsupported configuration format (use TOML, YAML or JSON)")
        return resolved

    def _load(self) -> Any:
        settings = _empty_settings()
        settings.update(copy.deepcopy(PLATFORM_DEFAULTS))
        secret_keys: set[str] = set()
        for path in self.files():
            data = _read_file(path)
            if path.name == SECRETS_FILE:
                secret_keys |= set(_flatten(data))
            try:
                settings.update(data, merge=True)
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(f"{path}: {exc}") from None
        # Files and defaults must not win over the environment, so the variables go last.
        for dotted, value in _environment_settings(os.environ if self._environ is None else self._environ):
            settings.set(dotted, value, merge=True)
        if self._overrides:
            settings.update(copy.deepcopy(self._overrides), merge=True)
        self.secret_keys = secret_keys
        return settings

    # -- validation ------------------------------------------------------------------------

    def validate(self, settings: Any | None = None) -> None:
        """Check the platform's validators, any a plugin registered, and the queue tables.

        Raises ConfigError listing every problem at once.
        """
        settings = self.settings if settings is None else settings
        settings.validators.register(*platform_validators())
        problems: list[str] = []
        try:
            settings.validators.validate_all()
        except ValidationError as exc:
            problems.extend(_describe(detail) for detail in exc.details)
        problems.extend(queue_problems(settings))
        if problems:
            raise ConfigError(problems)

    # -- reload ----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Any, list[str]], None]) -> None:
        """Call `callback(settings, changed_keys)` after every successful reload."""
        self._subscribers.append(callback)

    def reload(self, prepare: Callable[[Any], None] | None = None) -> list[str]:
        """Read the layers again; when valid, swap them in, notify subscribers, return the changed keys.

        `prepare(new_settings)` runs before validation (the runtime calls plugins' `configure`
        there so their validators apply). Invalid new settings raise ConfigError and the
        current ones stay in force.
        """
        with self._lock:
            previous_secrets = self.secret_keys
            try:
                new = self._load()
                if prepare is not None:
                    prepare(new)
                self.validate(new)
            except PlbaError:
                self.secret_keys = previous_secrets
                raise
            changed = changed_keys(settings_dict(self.settings), settings_dict(new))
            self.settings = new
        for callback in self._subscribers:
            try:
                callback(new, changed)
            except Exception:  # noqa: BLE001 - one subscriber's failure must not hide the reload from the rest
                logger.exception("configuration subscriber %r failed", callback)
        return changed

    # -- display ---------------------------------------------------------------------------

    def masked(self) -> dict[str, Any]:
        """The merged settings with every secret value replaced by a mask."""
        return mask_secrets(settings_dict(self.settings), self.secret_keys)

    def is_secret(self, dotted_key: str) -> bool:
        """Whether a key is secret: it came from `.secrets.toml` or is named like a password or token."""
        return dotted_key.lower() in self.secret_keys or bool(SECRET_KEY.search(dotted_key.rsplit(".", 1)[-1]))


def mask_secrets(data: Any, secret_keys: set[str], prefix: str = "") -> Any:
    """A copy of `data` with secret values masked (by key name or by membership in `secret_keys`)."""
    if isinstance(data, Mapping):
        result = {}
        for key, value in data.items():
            dotted = f"{prefix}{key}".lower()
            if not isinstance(value, Mapping) and (dotted in secret_keys or SECRET_KEY.search(str(key))):
                result[key] = MASK if value not in (None, "", False) else value
            else:
                result[key] = mask_secrets(value, secret_keys, f"{dotted}.")
        return result
    if isinstance(data, list):
        return [mask_secrets(item, secret_keys, prefix) for item in data]
    return data


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two settings dicts (added, removed or changed)."""
    old_flat, new_flat = _flatten(old), _flatten(new)
    return sorted(key for key in old_flat.keys() | new_flat.keys() if old_flat.get(key, ...) != new_flat.get(key, ...))


def _read_file(path: Path) -> dict[str, Any]:
    # Each file is read on its own so that a syntax error names the file (dynaconf's would not).
    probe = _empty_settings()
    try:
        probe.load_file(path=str(path))
    except Exception as exc:  # noqa: BLE001 - every parser raises its own type
        raise ConfigError(f"{path}: cannot be parsed: {exc}") from None
    return settings_dict(probe)


def _empty_settings() -> Any:
    # PLBA_ variables are applied by `_environment_settings` after the files, so that they win;
    # dynaconf's own environment loader is pointed at a prefix nothing uses.
    return Dynaconf(envvar_prefix="PLBA_DYNACONF_UNUSED", environments=False, load_dotenv=False,
                    merge_enabled=True, settings_files=[])


_DYNACONF_INTERNALS = {"load_dotenv", "envvar_prefix", "environments", "settings_files", "merge_enabled"}


def settings_dict(settings: Any) -> dict[str, Any]:
    """The settings as plain data with lower-case keys, without dynaconf's own switches."""
    return {key: value for key, value in _plain(settings.as_dict()).items() if key not in _DYNACONF_INTERNALS}


def _environment_settings(environ: Mapping[str, str]) -> list[tuple[str, Any]]:
    """(dotted key, parsed value) for every `PLBA_A__B=value`, values parsed as TOML."""
    found = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        dotted = ".".join(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        found.append((dotted, parse_conf_data(raw, tomlfy=True)))
    return found


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, Mapping) or not data:
        return {prefix[:-1]: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{str(key).lower()}."))
    return flat


def _plain(data: Any) -> Any:
    """Dynaconf boxes turned into plain dicts and lists with lower-case keys."""
    if isinstance(data, Mapping):
        return {str(key).lower(): _plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(item) for item in data]
    return data


def _describe(detail: tuple[Any, str]) -> str:
    _validator, message = detail
    return message.replace(" in env main", "").replace("must is_type_of", "must be of type")
