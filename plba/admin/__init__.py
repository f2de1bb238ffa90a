"""The admin console at `/admin/`: sessions, CSRF and safe headers around server-rendered pages and plugin pages."""

from __future__ import annotations

from typing import Any

from flask import Flask

from plba.admin.extension import Admin
from plba.admin.security import install_security
from plba.admin.views import build_console

__all__ = ["Admin", "install"]


def install(app: Flask, runtime: Any) -> None:
    """Serve the console on `app` (when `platform.admin.enabled`), with each plugin's `register_admin` pages."""
    install_security(app, runtime)
    blueprint = build_console()
    admin = Admin(app, runtime, blueprint)
    app.extensions["plba.admin"] = admin
    admin.load_plugins()
    app.register_blueprint(blueprint)
