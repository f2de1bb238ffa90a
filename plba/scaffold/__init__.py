"""`plba plugins new`: write a pip-installable plugin project from the template shipped in this package."""

from __future__ import annotations

import keyword
import os
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from plba import __version__
from plba.errors import UsageError

TEMPLATE_SUFFIX = ".tmpl"
# Names that would shadow what the generated project itself imports, or its tests directory.
RESERVED_NAMES = {"plba", "tests", "pytest", "dynaconf", "pluggy"}


class ScaffoldError(UsageError):
    """A plugin project cannot be created: bad name or the directory already exists."""


def check_name(name: str) -> None:
    """Raise ScaffoldError unless `name` can be a package, an entry-point name and a settings section.

    Lower case only, so that the settings section and its `PLBA_<NAME>__...` variables match exactly.
    """
    hint = "use a lower-case Python identifier such as my_plugin"
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name) or name != name.lower():
        raise ScaffoldError(f"{name!r} is not a valid plugin name: {hint}")
    if name in RESERVED_NAMES or name in sys.stdlib_module_names:
        raise ScaffoldError(f"{name!r} is not a valid plugin name: it would shadow the module of that name")


def placeholders(name: str) -> dict[str, str]:
    """What each `{{placeholder}}` in the template stands for."""
    major, minor = __version__.split(".")[:2]
    return {
        "name": name,
        "NAME": name.upper(),
        "distribution": "plba-" + name.replace("_", "-").strip("-").lower(),
        "plba_version": f"{major}.{minor}",
    }


def render(text: str, values: dict[str, str]) -> str:
    """Replace every `{{key}}` in `text` with its value."""
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def new_plugin(name: str, path: str | os.PathLike = ".") -> Path:
    """Create the plugin project `path/name` and return its directory; never overwrites anything."""
    check_name(name)
    target = Path(path).expanduser().resolve() / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists: choose another name or --path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # No exist_ok: a directory made since the check above is refused too, never written into.
        target.mkdir()
    except OSError as exc:
        raise ScaffoldError(f"cannot create {target}: {exc.strerror or exc}") from None
    values = placeholders(name)
    _copy(resources.files(__package__) / "template", target, values)
    return target


def _copy(source: Traversable, destination: Path, values: dict[str, str]) -> None:
    for entry in source.iterdir():
        if entry.name == "__pycache__":
            continue
        name = render(entry.name, values).removesuffix(TEMPLATE_SUFFIX)
        if entry.is_dir():
            (destination / name).mkdir()
            _copy(entry, destination / name, values)
        else:
            (destination / name).write_text(render(entry.read_text(encoding="utf-8"), values), encoding="utf-8")
