"""Plugin discovery: entry points in `plba.modules`, loaded one at a time, failures reported not fatal."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from plba import hookspecs
from plba.errors import PluginError
from plba.module import as_hook_plugin, plugin_name

if TYPE_CHECKING:
    from plba.registry import Registry

logger = logging.getLogger("plba.plugins")

ENTRY_POINT_GROUP = "plba.modules"
SELECTION_ENV = "PLBA_LOAD_PLUGINS"

LOADED, FAILED, DISABLED = "loaded", "failed", "disabled"


@dataclass
class PluginInfo:
    """What is known about one plugin: where it comes from, its hooks and whether it works."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    status: str = LOADED
    error: str | None = None
    plugin: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `plba plugins list --json` and `GET /plugins`."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
            "status": self.status,
            "error": self.error,
        }

    @property
    def label(self) -> str:
        """The plugin as people should read it: name, and its distribution and version when installed."""
        return f"{self.name!r} ({self.distribution} {self.version})" if self.distribution else repr(self.name)

    def fail(self, error: BaseException | str) -> None:
        """Mark the plugin broken with a one-line reason."""
        self.status = FAILED
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        # The reason is printed on one line wherever it shows (errors, tables, JSON).
        self.error = " ".join(text.split())


def selection_from_env(environ: dict[str, str] | None = None) -> set[str] | None:
    """Entry-point names chosen by `PLBA_LOAD_PLUGINS`: None (unset) means all, empty means none."""
    value = (os.environ if environ is None else environ).get(SELECTION_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows PLBA's hookspecs."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


class PluginSet:
    """The plugins of one runtime: the pluggy manager plus what we know of each plugin."""

    def __init__(self) -> None:
        self.manager = new_plugin_manager()
        self.infos: list[PluginInfo] = []

    @property
    def hook(self) -> Any:
        """The pluggy hook relay."""
        return self.manager.hook

    def add(self, plugin: Any, info: PluginInfo | None = None) -> PluginInfo:
        """Register one plugin object; a plugin with unknown or malformed hooks is marked failed."""
        info = info or PluginInfo(name=plugin_name(plugin))
        info.plugin = plugin
        hook_plugin = as_hook_plugin(plugin)
        problems = self._hook_problems(hook_plugin)
        if problems:
            info.fail("; ".join(problems))
            self.infos.append(info)
            return info
        try:
            self.manager.register(hook_plugin, name=info.name)
            # A misspelled hook name must fail loudly, but only for the plugin that has it.
            self.manager.check_pending()
        except Exception as exc:  # noqa: BLE001 - pluggy raises several types for bad plugins
            if self.manager.is_registered(hook_plugin):
                self.manager.unregister(hook_plugin)
            info.fail(exc)
        else:
            info.hooks = sorted(caller.name for caller in self.manager.get_hookcallers(hook_plugin) or [])
        self.infos.append(info)
        return info

    def _hook_problems(self, plugin: Any) -> list[str]:
        """What is wrong with `plugin`'s hook implementations, one phrase each (pluggy's own checks, in plain words).

        Hook wrappers (`wrapper=True`, `hookwrapper=True`) are refused: the runtime calls each
        plugin's implementation on its own, to blame and roll back exactly the plugin that failed,
        so a wrapper around the whole hook call would never run.
        """
        known = sorted(name for name, caller in vars(self.manager.hook).items() if getattr(caller, "spec", None))
        problems = []
        for attribute in dir(plugin):
            opts = self.manager.parse_hookimpl_opts(plugin, attribute)
            if opts is None:
                continue
            name = opts.get("specname") or attribute
            spec = getattr(getattr(self.manager.hook, name, None), "spec", None)
            if spec is None:
                near = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"the hooks are {', '.join(known)}"
                problems.append(f"unknown hook {name!r} ({hint})")
                continue
            if opts.get("wrapper") or opts.get("hookwrapper"):
                kind = "wrapper" if opts.get("wrapper") else "hookwrapper"
                problems.append(f"hook {name} is declared {kind}=True, which PLBA does not support "
                                f"(it calls each plugin's {name} on its own): use a plain @hookimpl")
                continue
            required = _required_arguments(getattr(plugin, attribute))
            extra = [arg for arg in required if arg not in spec.argnames]
            if extra:
                problems.append(f"hook {name}({', '.join(required)}) asks for {', '.join(map(repr, extra))}, "
                                f"which {name} does not pass (it passes {', '.join(spec.argnames)})")
        return problems

    def discover(self, selection: set[str] | None = None) -> list[PluginInfo]:
        """Load every `plba.modules` entry point, each on its own, honouring `selection`."""
        for entry_point in _entry_points():
            distribution, version = _distribution_of(entry_point)
            info = PluginInfo(name=entry_point.name, distribution=distribution, version=version)
            if selection is not None and entry_point.name not in selection:
                info.status = DISABLED
                self.infos.append(info)
                continue
            try:
                plugin = entry_point.load()
            except BaseException as exc:  # noqa: BLE001 - an import-time crash (even SystemExit) is the plugin's fault
                if isinstance(exc, KeyboardInterrupt):
                    raise
                # Reported by the caller (`plba run` refuses to start, `plugins list` shows it), once.
                info.fail(exc)
                logger.debug("plugin %s failed to load: %s", info.label, info.error)
                self.infos.append(info)
                continue
            self.add(plugin, info)
        return self.infos

    def unknown(self, selection: Iterable[str]) -> list[str]:
        """Names in `selection` that no discovered entry point has."""
        known = {info.name for info in self.infos}
        return sorted(set(selection) - known)

    def failed(self) -> list[PluginInfo]:
        """The plugins that failed to load or register."""
        return [info for info in self.infos if info.status == FAILED]

    def callers(self, hook_name: str) -> Iterator[tuple[PluginInfo, Callable[..., Any]]]:
        """Each working plugin's implementation of `hook_name`, to call on its own, in pluggy's call order.

        That order: `tryfirst` first, `trylast` last, otherwise the plugin registered last first.

        Calling them one by one (with keyword arguments) lets the runtime blame and roll back
        exactly the plugin that failed, where a plain hook call would stop at the first error.
        """
        by_name = {info.name: info for info in self.infos}
        for impl in reversed(getattr(self.manager.hook, hook_name).get_hookimpls()):
            info = by_name.get(impl.plugin_name) or PluginInfo(name=impl.plugin_name)
            if info.status == LOADED:
                yield info, _keyword_caller(impl)

    def configure(self, settings: Any, mark_failed: bool = True) -> None:
        """Call every plugin's `configure` hook with `settings`; PluginError names the ones that raised.

        At start-up a plugin that raises is marked failed; on a reload (`mark_failed=False`) the
        running plugin stays as it is and only the reload is refused.
        """
        failures = []
        for info, call in self.callers("configure"):
            try:
                call(settings=settings)
            except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
                if mark_failed:
                    info.fail(exc)
                failures.append(f"plugin {info.label} failed in configure: {type(exc).__name__}: {exc}")
        if failures:
            raise PluginError(failures)

    def register(self, registry: Registry, hook: str) -> None:
        """Call every plugin's `hook` (`register_workers`, ...) with its own scope of `registry`.

        A plugin that raises is marked failed and what it registered is discarded; PluginError
        names every plugin that failed, after all of them were called.
        """
        failures = []
        for info, call in self.callers(hook):
            scope = registry.scope(info.name)
            try:
                call(registry=scope)
            except Exception as exc:  # noqa: BLE001 - reported with the plugin's name below
                scope.discard()
                info.fail(exc)
                failures.append(f"plugin {info.label} failed in {hook}: {info.error}")
            else:
                scope.commit()
        if failures:
            raise PluginError(failures)


def _required_arguments(function: Any) -> list[str]:
    """The arguments a hook implementation cannot do without (those pluggy passes), in order."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty]


def _keyword_caller(impl: Any) -> Callable[..., Any]:
    def call(**kwargs: Any) -> Any:
        return impl.function(**{arg: kwargs[arg] for arg in impl.argnames})

    return call


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = entry_point.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version
