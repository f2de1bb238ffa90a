"""The HTTP control plane: a Flask app served by waitress from a side thread.

Nothing here is imported until a runtime starts its control plane or a `plba status`/`stop`
command runs, so that `plba plugins list` stays quick.
"""

from __future__ import annotations

from typing import Any


def configured_token(settings: Any) -> str | None:
    """The service token (`platform.control.token`) in force, or None when none (or an empty one) is set."""
    token = settings.get("platform.control.token")
    return str(token) if token not in (None, "") else None
