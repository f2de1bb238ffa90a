"""Layered configuration on dynaconf: files in a fixed order, then `PLBA_` variables, then validation."""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf
from dynaconf.utils.parse_conf import parse_conf_data
from dynaconf.validator import ValidationError

from plba import schema
from plba.cluster import REDIS_SCHEMES, url_problem
from plba.config_checks import (
    DEFAULT_ORIGIN,
    ENV_ORIGIN,
    WILDCARD,
    KnownKeys,
    describe_failure,
    host_problem,
    shape_problems,
    table_paths,
    typo_warnings,
    validator_names,
    where,
)
from plba.errors import ConfigError
from plba.masking import MASK, is_secret_name, mask_secrets
from plba.queue.factory import backend_of, backend_problem

__all__ = ["MASK", "ConfigurationManager", "changed_keys", "display_path", "flatten", "settings_dict"]

logger = logging.getLogger("plba.config")

ENV_PREFIX = "PLBA_"
# Variables that steer the CLI, not settings.
RESERVED_ENV = {"PLBA_LOAD_PLUGINS", "PLBA_TOKEN"}
DEFAULT_FILES = ("settings.toml", "settings.local.toml", ".secrets.toml")
SECRETS_FILE = ".secrets.toml"
SUPPORTED_SUFFIXES = (".toml", ".yaml", ".yml", ".json")
OVERRIDES_ORIGIN = "overrides"

# A check a higher layer adds (`add_check`): (settings, origin_of) -> problem lines.
Check = Callable[[Any, Callable[[str], "str | None"]], list[str]]

PLATFORM_DEFAULTS: dict[str, Any] = schema.defaults()


@dataclass
class _Layers:
    """One loading of the layers: the merged settings, which keys are secret, and who set each key."""

    settings: Any
    secret_keys: set[str] = field(default_factory=set)
    origins: dict[str, str] = field(default_factory=dict)


class ConfigurationManager:
    """Loads the layers, validates them, masks secrets, tells where each key came from, reloads on request."""

    def __init__(self, config_files: Iterable[str | os.PathLike] = (), root: str | os.PathLike | None = None,
                 environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> None:
        self.root = Path(root or os.getcwd())
        self.config_files = [self._resolve_user_file(path) for path in config_files]
        self._environ = environ
        self._overrides = copy.deepcopy(dict(overrides or {}))
        self._subscribers: list[Callable[[Any, list[str]], None]] = []
        self._checks: list[Check] = []
        self._lock = threading.Lock()
        self._layers = self._load()

    @property
    def settings(self) -> Any:
        """The merged settings in force (a Dynaconf object)."""
        return self._layers.settings

    @property
    def secret_keys(self) -> set[str]:
        """Dotted keys set by `.secrets.toml`, masked wherever settings are shown."""
        return self._layers.secret_keys

    # -- loading ---------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Every file that takes part, lowest layer first (default files that do not exist are skipped)."""
        # lexists, not is_file: a directory or an unreadable file of that name is an error, not absent.
        defaults = [self.root / name for name in DEFAULT_FILES]
        return [path for path in defaults if os.path.lexists(path)] + self.config_files

    def _resolve_user_file(self, path: str | os.PathLike) -> Path:
        resolved = Path(path).expanduser()
        resolved = resolved if resolved.is_absolute() else Path.cwd() / resolved
        if not os.path.lexists(resolved):
            raise ConfigError(f"{path}: configuration file not found")
        if resolved.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise ConfigError(f"{path}: unsupported configuration format (use TOML, YAML or JSON)")
        return resolved

    def _load(self) -> _Layers:
        layers = _Layers(_empty_settings())
        settings = layers.settings
        settings.update(copy.deepcopy(PLATFORM_DEFAULTS))
        for path in self.files():
            data = _read_file(path)
            if path.name == SECRETS_FILE:
                layers.secret_keys |= set(flatten(data))
            # Recorded before merging: dynaconf merges the tables below into the data it is given.
            _record(layers.origins, data, display_path(path))
            try:
                settings.update(data, merge=True)
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(f"{display_path(path)}: {exc}") from None
        # Files and defaults must not win over the environment, so the variables go last.
        environ = os.environ if self._environ is None else self._environ
        for name, dotted, value in _environment_settings(environ):
            _record(layers.origins, value, ENV_ORIGIN + name, dotted)
            try:
                settings.set(dotted, value, merge=True)
            except Exception:  # noqa: BLE001 - dynaconf cannot set a key below a value that is not a table
                raise ConfigError(f"{name}: {dotted.rsplit('.', 1)[0]} is not a table, so {dotted} cannot be set"
                                  ) from None
        if self._overrides:
            _record(layers.origins, self._overrides, OVERRIDES_ORIGIN)
            settings.update(copy.deepcopy(self._overrides), merge=True)
        return layers

    # -- where each key came from ----------------------------------------------------------

    def origins(self) -> dict[str, str]:
        """`{dotted_key: layer}` for every key in force: `default`, a file path, or `env PLBA_...`.

        A key no file or variable set came from a default: the platform's or a plugin validator's.
        """
        return _origins_in_force(self._layers)

    # -- validation ------------------------------------------------------------------------

    def validate(self, settings: Any | None = None, strict: bool = False, plugins: Iterable[str] = ()) -> list[str]:
        """Check shapes, the platform's and plugins' validators, queue tables and the control host.

        Validator defaults are applied on the way. Returns the typo warnings (unknown keys);
        raises ConfigError listing every problem at once (the warnings too when `strict`).
        `plugins` are the installed plugin names, whose sections are never called typos.
        """
        layers = self._layers if settings is None or settings is self.settings else _Layers(settings)
        return _check(layers, strict, plugins, self._checks)

    def add_check(self, check: Check) -> None:
        """Have `validate` and `reload` also call `check(settings, origin_of)`, which returns problem lines.

        For the settings a higher layer reads (schedule overrides): it checks them here, with the
        rest, and `origin_of(dotted_key)` tells where a key came from, for the line's ` in FILE`.
        """
        self._checks.append(check)

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
            new = self._load()
            if prepare is not None:
                prepare(new.settings)
            for warning in _check(new, strict=False, plugins=(), checks=self._checks):
                logger.warning("%s", warning)
            changed = changed_keys(settings_dict(self.settings), settings_dict(new.settings))
            self._layers = new
        for callback in self._subscribers:
            try:
                callback(new.settings, changed)
            except Exception:  # noqa: BLE001 - one subscriber's failure must not hide the reload from the rest
                logger.exception("configuration subscriber %r failed", callback)
        return changed

    # -- display ---------------------------------------------------------------------------

    def masked(self) -> dict[str, Any]:
        """The merged settings with every secret value (and every password inside a URL) masked."""
        return mask_secrets(settings_dict(self.settings), self.secret_keys)

    def is_secret(self, dotted_key: str) -> bool:
        """Whether a key is secret: it came from `.secrets.toml` or is named like a password or token."""
        return _is_secret(dotted_key, self.secret_keys)


def _is_secret(dotted_key: str, secret_keys: set[str]) -> bool:
    return dotted_key.lower() in secret_keys or is_secret_name(dotted_key)


def _origins_in_force(layers: _Layers) -> dict[str, str]:
    flat = flatten(settings_dict(layers.settings))
    return {key: layers.origins.get(key, DEFAULT_ORIGIN) for key in sorted(flat)}


def _check(layers: _Layers, strict: bool, plugins: Iterable[str], checks: Iterable[Check] = ()) -> list[str]:
    """Validate one loading of the layers; see `ConfigurationManager.validate`."""
    settings = layers.settings

    def origin_of(key: str) -> str | None:
        return layers.origins.get(key.lower())

    def value_of(key: str) -> Any:
        value = settings.get(key)
        return MASK if _is_secret(key, layers.secret_keys) and value not in (None, "") else value

    known = schema.known_keys() + sorted(validator_names(settings.validators))
    data = settings_dict(settings)
    # Validators would trip over a section of the wrong shape, so shapes are checked first, alone.
    problems = shape_problems(data, {path for path in table_paths(known) if WILDCARD not in path}, origin_of)
    queues = data.get("platform", {}).get("queues", {}) if not problems else {}
    problems += shape_problems(data, {f"{schema.QUEUE_PREFIX}.{name}" for name in queues}, origin_of)
    if problems:
        raise ConfigError(problems)
    settings.validators.register(*schema.validators())
    for name, table in queues.items():
        settings.validators.register(*schema.queue_validators(name, backend_of(table)))
    try:
        settings.validators.validate_all()
    except ValidationError as exc:
        problems.extend(describe_failure(validator, message, value_of, origin_of) for validator, message in exc.details)
    problems.extend(filter(None, (backend_problem(name, table) for name, table in queues.items())))
    problems.extend(_redis_url_problems(queues, origin_of))
    cluster_problem = url_problem(str(settings.get("platform.cluster.url", "") or ""))
    if cluster_problem:
        problems.append(cluster_problem + where(origin_of("platform.cluster.url")))
    for check in checks:
        problems.extend(check(settings, origin_of))
    if settings.get("platform.control.enabled") is True and not any("platform.control.host" in p for p in problems):
        problems.extend(filter(None, [host_problem(settings.get("platform.control.host"),
                                                   origin_of("platform.control.host"))]))
    user_keys = {key: origin for key, origin in _origins_in_force(layers).items() if origin != DEFAULT_ORIGIN}
    warnings = typo_warnings(user_keys, KnownKeys(known), plugins)
    # An unknown key in a schedule's override table would be refused when the schedules are built.
    problems += [warning for warning in warnings if warning.startswith(f"unknown key {schema.SCHEDULE_PREFIX}.")]
    warnings = [warning for warning in warnings if warning not in problems]
    if problems or (strict and warnings):
        raise ConfigError(problems + warnings)
    return warnings


def _redis_url_problems(queues: Mapping[str, Any], origin_of: Callable[[str], str | None]) -> list[str]:
    problems = []
    for name, table in queues.items():
        if backend_of(table) != "redis":
            continue
        table_key = f"{schema.QUEUE_PREFIX}.{name}"
        key, url = f"{table_key}.url", table.get("url")
        if url is None:
            problems.append(f"{key} is required for the redis backend{where(origin_of(table_key))}")
        elif not str(url).startswith(REDIS_SCHEMES):
            problems.append(f"{key} must start with {', '.join(REDIS_SCHEMES)} (it is {url!r}){where(origin_of(key))}")
    return problems


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two settings dicts (added, removed or changed)."""
    old_flat, new_flat = flatten(old), flatten(new)
    changed = {key for key in old_flat.keys() | new_flat.keys() if old_flat.get(key, ...) != new_flat.get(key, ...)}
    # An empty table that gained keys (or lost its last) is named by those keys, not as a change of its own.
    tables = table_paths(changed)
    return sorted(key for key in changed if key not in tables)


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_file(path: Path) -> dict[str, Any]:
    # Opened here first: dynaconf only warns about a file it cannot read and goes on without it.
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"{display_path(path)}: cannot be read: {(exc.strerror or str(exc)).lower()}") from None
    # Each file is parsed on its own so that a syntax error names the file (dynaconf's would not).
    probe = _empty_settings()
    try:
        probe.load_file(path=str(path))
    except Exception as exc:  # noqa: BLE001 - every parser raises its own type
        raise ConfigError(f"{display_path(path)}: cannot be parsed: {_parse_error(exc)}") from None
    return settings_dict(probe)


def _parse_error(exc: Exception) -> str:
    """A parser's error on one line, with the line and column where it has them."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"{problem} (at line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _empty_settings() -> Any:
    # PLBA_ variables are applied by `_environment_settings` after the files, so that they win;
    # dynaconf's own environment loader is pointed at a prefix nothing uses.
    return Dynaconf(envvar_prefix="PLBA_DYNACONF_UNUSED", environments=False, load_dotenv=False,
                    merge_enabled=True, settings_files=[])


_DYNACONF_INTERNALS = {"load_dotenv", "envvar_prefix", "environments", "settings_files", "merge_enabled"}


def settings_dict(settings: Any) -> dict[str, Any]:
    """The settings as plain data with lower-case keys, without dynaconf's own switches."""
    return {key: value for key, value in _plain(settings.as_dict()).items() if key not in _DYNACONF_INTERNALS}


def _environment_settings(environ: Mapping[str, str]) -> list[tuple[str, str, Any]]:
    """(variable, dotted key, parsed value) for every `PLBA_A__B=value`, values parsed as TOML."""
    found = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        dotted = ".".join(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        found.append((name, dotted, parse_conf_data(raw, tomlfy=True)))
    return found


def _record(origins: dict[str, str], data: Any, origin: str, prefix: str = "") -> None:
    """Note `origin` for every key in `data` (and every table on the way, for messages about shapes)."""
    flat = flatten(data, f"{prefix}." if prefix else "")
    for key in flat:
        parts = key.split(".")
        for depth in range(1, len(parts) + 1):
            origins[".".join(parts[:depth])] = origin


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested tables as `{dotted_key: value}` (an empty table is a value of its own)."""
    if not isinstance(data, Mapping) or not data:
        return {prefix[:-1]: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}{str(key).lower()}."))
    return flat


def _plain(data: Any) -> Any:
    """Dynaconf boxes turned into plain dicts and lists with lower-case keys."""
    if isinstance(data, Mapping):
        return {str(key).lower(): _plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(item) for item in data]
    return data
