"""Every hookspec is documented in docs/hooks.md under its exact signature and has a `test_hook_<name>`."""

from __future__ import annotations

import inspect
import re

import pytest

from plba import hookspecs
from tests.helpers import REPO

HOOKS_DOC = REPO / "docs" / "hooks.md"


def hook_signatures() -> dict[str, str]:
    """Each hookspec's name and its signature as documented: `name(arg, ...)`."""
    specs = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, f"{hookspecs.PROJECT}_spec"):
            specs[name] = f"{name}({', '.join(inspect.signature(function).parameters)})"
    return specs


def documented_headings() -> set[str]:
    """The second-level headings of docs/hooks.md."""
    return set(re.findall(r"^## (.+?)\s*$", HOOKS_DOC.read_text(), re.MULTILINE))


def test_hookspecs_are_found() -> None:
    # Given the hookspec module, when its specs are collected, then the design's hooks are among them
    assert {"configure", "register_workers", "register_health"} <= hook_signatures().keys()


@pytest.mark.parametrize("hook", sorted(hook_signatures()))
def test_every_hook_is_documented_under_its_exact_signature(hook: str) -> None:
    # Given a hookspec, when docs/hooks.md is read, then a heading is its exact signature
    signature = hook_signatures()[hook]
    assert signature in documented_headings(), f"docs/hooks.md has no heading '## {signature}'"


def test_every_documented_hook_exists() -> None:
    # Given the headings of docs/hooks.md that look like signatures, then each is a current hookspec
    documented = {heading for heading in documented_headings() if re.fullmatch(r"\w+\(.*\)", heading)}
    assert documented <= set(hook_signatures().values())


@pytest.mark.parametrize("hook", sorted(hook_signatures()))
def test_every_hook_has_a_test_named_after_it(hook: str) -> None:
    # Given a hookspec, when the test files are searched, then one defines test_hook_<name>
    pattern = re.compile(rf"^\s*def test_hook_{hook}\(", re.MULTILINE)
    files = [path for path in (REPO / "tests").rglob("*.py") if pattern.search(path.read_text())]
    assert files, f"no test function named test_hook_{hook} under tests/"
