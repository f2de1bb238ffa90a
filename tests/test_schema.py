"""Each platform setting is declared once: the defaults, the code's fallbacks and the README agree with it."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from plba import schema
from plba.config import PLATFORM_DEFAULTS
from plba.queue.redis_support import RedisQueueSettings
from tests.helpers import REPO

GENERATE = 'python -c "from plba.schema import markdown_table; print(markdown_table(), end=\'\')"'


def test_the_readme_settings_table_is_the_declaration() -> None:
    readme = (REPO / "README.md").read_text()
    table = re.search(r"<!-- settings-table: start -->\n(.*?)<!-- settings-table: end -->", readme, re.DOTALL)
    assert table is not None, "README.md lost its settings-table markers"
    assert table.group(1) == schema.markdown_table(), f"regenerate the README table with: {GENERATE}"


# Tables keyed by the user's names (queues, schedules), declared as templates of their keys.
TEMPLATED = {schema.QUEUE_PREFIX, schema.SCHEDULE_PREFIX}


def test_the_defaults_come_from_the_declaration() -> None:
    assert schema.default("platform.control.port") == PLATFORM_DEFAULTS["platform"]["control"]["port"] == 8080
    declared = {s.name for s in schema.PLATFORM_SETTINGS if s.default is not schema.NO_DEFAULT}
    assert declared == {key for key in _flat(PLATFORM_DEFAULTS) if key not in TEMPLATED}


def _flat(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}"}
    return keys


def _reads(path: Path) -> list[tuple[str, ast.expr | None, int]]:
    """Every `x.get("literal key", default)` call in a module: key, default node, line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.append((node.args[0].value, node.args[1] if len(node.args) > 1 else None, node.lineno))
    return found


def test_every_platform_key_the_code_reads_is_declared_with_the_same_fallback() -> None:
    # Given every settings read in plba/ that names a platform or log key literally
    problems = []
    for path in sorted((REPO / "plba").rglob("*.py")):
        for key, fallback, line in _reads(path):
            if not key.startswith(("platform.", "log.")) or key in TEMPLATED:
                continue
            where = f"{path.relative_to(REPO)}:{line}"
            # Then the key is declared, and a fallback the code gives is the declared default
            if key not in schema.SETTINGS_BY_NAME:
                problems.append(f"{where}: {key} is not declared in plba/schema.py")
            elif fallback is not None and _literal(fallback, path) != schema.default(key):
                problems.append(f"{where}: fallback for {key} differs from its declared default")
    assert problems == []


def test_every_queue_key_the_backends_read_is_declared_with_the_same_fallback() -> None:
    problems = []
    for path in (REPO / "plba" / "queue" / "factory.py", REPO / "plba" / "queue" / "redis_support.py"):
        for key, fallback, line in _reads(path):
            setting = schema.QUEUE_SETTINGS_BY_NAME.get(key)
            if setting is None:
                problems.append(f"{path.name}:{line}: queue key {key} is not declared in plba/schema.py")
            elif fallback is not None and setting.default is not schema.NO_DEFAULT \
                    and _literal(fallback, path) != setting.default:
                problems.append(f"{path.name}:{line}: fallback for {key} differs from its declared default")
    # And the Redis queue's typed settings default to the declared values
    for field in dataclasses.fields(RedisQueueSettings):
        declared = schema.QUEUE_SETTINGS_BY_NAME[field.name].default
        if declared is not schema.NO_DEFAULT and field.default != declared:
            problems.append(f"RedisQueueSettings.{field.name} = {field.default!r}, declared {declared!r}")
    assert problems == []


def _literal(node: ast.expr, path: Path) -> object:
    """A fallback's value: a literal, `default("key")`, or a module-level constant (of that module or the queues')."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "default":
        return schema.default(ast.literal_eval(node.args[0]))  # plba.schema.default("key")
    if isinstance(node, ast.Name):
        import importlib

        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for candidate in (module, "plba.worker", "plba.queue.redis_support"):
            value = getattr(importlib.import_module(candidate), node.id, None)
            if value is not None:
                return value
    return ast.unparse(node)
