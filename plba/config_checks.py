"""What is wrong with a configuration, in plain words: failed validators, wrong shapes, typos, bad hosts.

Every message names the key and where its value came from (a file, a `PLBA_` variable, or the
default), as `ConfigurationManager.origins()` records it.
"""

from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

DEFAULT_ORIGIN = "default"
ENV_ORIGIN = "env "
WILDCARD = "<name>"

# dynaconf's own messages (`default_messages` of its Validator) that we put in other words.
_OPERATION = re.compile(r"^(?P<name>\S+) must (?P<op>\w+) ")
_INVALID_OPERATION = re.compile(r"^Invalid Operation '(?P<op>\w+)' for type .* on '(?P<name>[^']+)'")
_REQUIRED = re.compile(r"^(?P<name>\S+) is required")
_FORBIDDEN = re.compile(r"^(?P<name>\S+) cannot exists")
_CONDITION = re.compile(r"^(?P<name>\S+) invalid for (?P<function>[^(]+)\(")

_PHRASES: Mapping[str, str] = {
    "eq": "must be {op!r}", "identity": "must be {op!r}", "ne": "must not be {op!r}",
    "gt": "must be greater than {op}", "lt": "must be less than {op}",
    "gte": "must be at least {op}", "ge": "must be at least {op}",
    "lte": "must be at most {op}", "le": "must be at most {op}",
    "is_in": "must be one of {choices}", "is_not_in": "must not be one of {choices}",
    "cont": "must contain {op!r}", "contains": "must contain {op!r}", "not_contains": "must not contain {op!r}",
    "len_eq": "must have a length of {op}", "len_ne": "must not have a length of {op}",
    "len_min": "must have a length of at least {op}", "len_max": "must have a length of at most {op}",
    "startswith": "must start with {op!r}", "endswith": "must end with {op!r}",
    "not_startswith": "must not start with {op!r}", "not_endswith": "must not end with {op!r}",
    "regex": "must match {pattern}", "not_regex": "must not match {pattern}",
}
_TYPE_NAMES: Mapping[type, str] = {
    int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
    dict: "a table", tuple: "a list",
}


def where(origin: str | None) -> str:
    """` in FILE`, ` from PLBA_...` or nothing (for a default), to end a message with."""
    if not origin or origin == DEFAULT_ORIGIN:
        return ""
    if origin.startswith(ENV_ORIGIN):
        return f" from {origin[len(ENV_ORIGIN):]}"
    return f" in {origin}"


def describe_failure(validator: Any, message: str, value_of: Callable[[str], Any],
                     origin_of: Callable[[str], str | None]) -> str:
    """One dynaconf validation failure as `key must be ... (it is X) in FILE`."""
    match = _OPERATION.match(message) or _INVALID_OPERATION.match(message)
    if match and (match["op"] in _PHRASES or match["op"] == "is_type_of"):
        name, op = match["name"], match["op"]
        operand = _operand(validator, op)
        return f"{name} {_phrase(op, operand)} (it is {value_of(name)!r}){where(origin_of(name))}"
    if match := _REQUIRED.match(message):
        return f"{match['name']} is required{_condition_words(validator)}"
    if match := _FORBIDDEN.match(message):
        return f"{match['name']} must not be set{_condition_words(validator)}{where(origin_of(match['name']))}"
    if match := _CONDITION.match(message):
        name = match["name"]
        return f"{name} is not accepted by {match['function']} (it is {value_of(name)!r}){where(origin_of(name))}"
    # A plugin's own message, or one we do not know: keep its words, drop dynaconf's environment.
    return message.replace(" in env main", "")


def _phrase(op: str, operand: Any) -> str:
    if op == "is_type_of":
        return f"must be {_type_words(operand)}"
    if op == "len_min" and operand == 1:
        return "must not be empty"
    template = _PHRASES[op]
    choices = ", ".join(repr(choice) for choice in operand) if isinstance(operand, Iterable) else repr(operand)
    return template.format(op=operand, choices=choices, pattern=getattr(operand, "pattern", operand))


def _type_words(types: Any) -> str:
    types = tuple(types) if isinstance(types, (tuple, list)) else (types,)
    if set(types) == {int, float}:
        return "a number"
    return " or ".join(_TYPE_NAMES.get(kind, f"of type {getattr(kind, '__name__', kind)}") for kind in types)


def _operand(validator: Any, op: str) -> Any:
    """The value an operation compared against, from the validator (or the combined ones inside it)."""
    for candidate in _walk(validator):
        operations = getattr(candidate, "operations", {}) or {}
        if op in operations:
            return operations[op]
    return "?"


def _condition_words(validator: Any) -> str:
    when = getattr(validator, "when", None)
    if when is None or not getattr(when, "names", None):
        return ""
    condition = when.operations.get("eq", ...) if getattr(when, "operations", None) else ...
    return f" when {when.names[0]} is {condition!r}" if condition is not ... else f" when {when.names[0]} is set"


def _walk(validator: Any) -> Iterable[Any]:
    yield validator
    for inner in ("validator_a", "validator_b"):
        if getattr(validator, inner, None) is not None:
            yield from _walk(getattr(validator, inner))


def validator_names(validators: Iterable[Any]) -> set[str]:
    """Every key a list of dynaconf validators speaks of (combined ones and `when` conditions included)."""
    names: set[str] = set()
    for validator in validators:
        for candidate in _walk(validator):
            names.update(str(name).lower() for name in getattr(candidate, "names", ()) or ())
            if getattr(candidate, "when", None) is not None:
                names |= validator_names([candidate.when])
    return names


# -- shapes -------------------------------------------------------------------------------


def table_paths(known: Iterable[str]) -> set[str]:
    """Every proper prefix of the known keys: the places where a table must be."""
    paths: set[str] = set()
    for key in known:
        parts = key.split(".")
        paths.update(".".join(parts[:depth]) for depth in range(1, len(parts)))
    return paths


def shape_problems(data: Mapping[str, Any], tables: set[str], origin_of: Callable[[str], str | None]) -> list[str]:
    """`platform must be a table (it is 5) in settings.toml` for every known table given as something else."""
    problems = []
    for path in sorted(tables, key=lambda p: (p.count("."), p)):
        value, found = _lookup(data, path)
        if found and not isinstance(value, Mapping):
            problems.append(f"{path} must be a table (it is {value!r}){where(origin_of(path))}")
    return problems


def _lookup(data: Any, path: str) -> tuple[Any, bool]:
    """The value at `path` and whether it is there."""
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None, False
        data = data[part]
    return data, True


# -- typos --------------------------------------------------------------------------------


class KnownKeys:
    """The keys the platform and the loaded plugins declare, as a tree, to tell typos from settings."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.tree: dict[str | None, Any] = {}  # None marks where a declared key ends
        for key in keys:
            node = self.tree
            for part in key.lower().split("."):
                node = node.setdefault(part, {})
            node[None] = True  # what lies below a declared key is its value

    def sections(self) -> set[str]:
        """The top-level tables something declares keys of."""
        return {name for name in self.tree if name is not None}

    def first_unknown(self, key: str) -> tuple[str, list[str]] | None:
        """The shortest unknown prefix of the leaf `key` and the known names at that level, or None when it is known."""
        return _first_unknown(self.tree, key.split("."), 0)


def _first_unknown(node: dict[str | None, Any], parts: list[str], depth: int) -> tuple[str, list[str]] | None:
    """`KnownKeys.first_unknown` for `parts[depth:]` below `node`."""
    while depth < len(parts):
        if None in node and depth:
            return None
        part = parts[depth]
        if part in node:
            node, depth = node[part], depth + 1
            continue
        named = node.get(WILDCARD)
        if named is None:
            return ".".join(parts[: depth + 1]), sorted(name for name in node if name not in (None, WILDCARD))
        # A name may hold dots (`[platform.schedules."acme.report"]` flattens to `acme.report`): it
        # takes as many parts as leave the rest known, at least one part being left for the key itself.
        found = [_first_unknown(named, parts, end) for end in range(depth + 1, max(depth + 2, len(parts)))]
        return None if None in found else found[-1]  # named as the longest name would make it
    return None


def typo_warnings(user_keys: Mapping[str, str], known: KnownKeys, plugin_names: Iterable[str]) -> list[str]:
    """One warning per unknown key in a known section (and per unknown section close to a known one).

    `user_keys` maps each key a file or variable set to where it came from. A top-level table
    that nothing declares may belong to a plugin that is not installed or not selected, so it
    is only questioned when its name is close to a known one.
    """
    warnings: dict[tuple[str, str], str] = {}
    sections = known.sections()
    plugins = set(plugin_names)
    tables = table_paths(user_keys)
    for key, origin in sorted(user_keys.items()):
        if key in tables:
            continue  # a table: the keys in it are looked at one by one
        found = known.first_unknown(key)
        if found is None:
            continue
        prefix, siblings = found
        section = key.split(".", 1)[0]
        if section not in sections:
            close = difflib.get_close_matches(section, sorted(sections), n=1, cutoff=0.75)
            if section in plugins or not close:
                continue
            message = f"unknown section [{section}]{where(origin)} (did you mean [{close[0]}]?)"
            warnings.setdefault((section, origin), message)
            continue
        last = prefix.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(last, siblings, n=1, cutoff=0.6)
        parent = prefix.rsplit(".", 1)[0]
        hint = f" (did you mean {parent}.{close[0]}?)" if close else f" (known here: {', '.join(siblings)})"
        warnings.setdefault((prefix, origin), f"unknown key {prefix}{where(origin)}{hint}")
    return list(warnings.values())


# -- the control plane's address ----------------------------------------------------------


def host_problem(host: Any, origin: str | None) -> str | None:
    """Why the control plane cannot listen on `host` (it does not resolve), or None when it can try."""
    if not isinstance(host, str) or not host:
        return None  # the validators report the type
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return f"platform.control.host cannot be resolved: {host!r} ({reason}){where(origin)}"
    return None

