"""The object the `register_admin(admin)` hook receives: plugin pages, plugin actions, and rendering in the layout."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, render_template
from jinja2 import ChoiceLoader, PackageLoader

from plba.control import auth
from plba.users import Role

logger = logging.getLogger("plba.admin")


@dataclass(frozen=True)
class MenuEntry:
    """A plugin page in the console's menu."""

    plugin: str
    title: str
    url: str
    role: Role


class Admin:
    """The console as plugins see it; `page`, `action` and `render` act for the plugin being registered."""

    def __init__(self, app: Flask, runtime: Any, blueprint: Blueprint) -> None:
        self.app = app
        self.blueprint = blueprint
        self.runtime = runtime
        self.menu: list[MenuEntry] = []
        self._plugin: str | None = None
        self._loaders: list[Any] = []

    def load_plugins(self) -> None:
        """Call each plugin's `register_admin`; one that raises is logged and left out, the console still serves."""
        for info, call in self.runtime.plugins.callers("register_admin"):
            self._plugin = info.name
            kept = list(self.menu)
            try:
                module = getattr(info.plugin, "__name__", None) or type(info.plugin).__module__
                package = module.split(".")[0]
                try:
                    self._loaders.append(PackageLoader(package, "templates"))
                except ValueError:
                    pass  # a plugin without templates of its own
                call(admin=self)
            except Exception as exc:  # noqa: BLE001 - a plugin's pages must never break the console
                self.menu = kept
                logger.error("plugin %s: register_admin failed, its console pages are not served: %s: %s",
                             info.name, type(exc).__name__, exc)
        self._plugin = None
        if self._loaders:
            self.app.jinja_loader = ChoiceLoader([self.app.jinja_loader, *self._loaders]) \
                if self.app.jinja_loader else ChoiceLoader(self._loaders)

    def _rule(self, path: str) -> tuple[str, str]:
        plugin = self._plugin or "plugin"
        slug = re.sub(r"[^0-9A-Za-z_]", "_", f"{plugin}_{path}")
        return f"/plugins/{plugin}/{path.strip('/')}", f"plugin_{slug}"

    def page(self, path: str, title: str, view: Callable[..., Any], role: str = "viewer") -> None:
        """Add a page at `/admin/plugins/<plugin>/<path>`, in the menu, readable by `role` and above."""
        rule, endpoint = self._rule(path)
        needed = Role.parse(role)
        self.blueprint.add_url_rule(rule, endpoint, auth.requires(needed)(view), methods=["GET"])
        self.menu.append(MenuEntry(self._plugin or "", title, f"/admin{rule}", needed))

    def action(self, path: str, view: Callable[..., Any], role: str = "operator") -> None:
        """Add a POST handler at `/admin/plugins/<plugin>/<path>`: CSRF-checked, role-checked and audited."""
        from plba.admin.views import plugin_action

        rule, endpoint = self._rule(path)
        name = f"{self._plugin}.{path.strip('/')}"
        self.blueprint.add_url_rule(rule, endpoint, plugin_action(name, Role.parse(role), view), methods=["POST"])

    def render(self, template: str, **context: Any) -> str:
        """Render `template` (from the plugin's `templates/` folder) inside the console's layout."""
        return render_template(template, **context)
