"""Typed action parameters: each checks and converts one JSON value, naming the field when it is wrong."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from plba.actions.errors import InvalidParams

# A check takes the field's name and its JSON value; it returns the value to use or raises InvalidParams.
# Each carries `schema`, the JSON Schema of what it accepts, for the OpenAPI document.
Check = Callable[[str, Any], Any]


def _described(check: Check, schema: dict[str, Any]) -> Check:
    check.schema = schema  # type: ignore[attr-defined]
    return check


def schema_of(check: Check) -> dict[str, Any]:
    """The JSON Schema a check accepts (an empty schema when it declares none)."""
    return dict(getattr(check, "schema", {}))


@dataclass(frozen=True)
class Param:
    """One parameter of an action: its name, its check, whether it must be given, and its default."""

    name: str
    check: Check
    help: str
    required: bool = False
    default: Any = None


def boolean() -> Check:
    """true or false."""

    def check(name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidParams(f"{name} must be true or false, not {_shown(value)}")
        return value

    return _described(check, {"type": "boolean"})


def number(minimum: float, maximum: float, *, nullable: bool = False) -> Check:
    """A finite number from `minimum` to `maximum` (null too when `nullable`)."""

    def check(name: str, value: Any) -> float | None:
        if value is None and nullable:
            return None
        # The bounds first: a huge JSON integer compares fine but overflows math.isfinite.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not minimum <= value <= maximum \
                or not math.isfinite(value):
            allowed = "null or a number" if nullable else "a number"
            raise InvalidParams(f"{name} must be {allowed} from {minimum:g} to {maximum:g}, not {_shown(value)}")
        return float(value)

    return _described(check, {"type": ["number", "null"] if nullable else "number", "minimum": minimum,
                              "maximum": maximum})


def choice(values: Sequence[str], *, case_insensitive: bool = False) -> Check:
    """One of `values` (matched ignoring case when asked, and returned as declared)."""

    def check(name: str, value: Any) -> str:
        if isinstance(value, str):
            for allowed in values:
                if value == allowed or (case_insensitive and value.lower() == allowed.lower()):
                    return allowed
        raise InvalidParams(f"{name} must be one of {', '.join(values)}, not {_shown(value)}")

    return _described(check, {"enum": list(values)})


def text(max_length: int, *, pattern: Callable[[str], bool] | None = None, what: str = "text") -> Check:
    """A non-empty string of at most `max_length` characters, also passing `pattern` when given."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > max_length \
                or (pattern is not None and not pattern(value)):
            raise InvalidParams(f"{name} must be {what} of 1 to {max_length} characters, not {_shown(value)}")
        return value

    return _described(check, {"type": "string", "minLength": 1, "maxLength": max_length})


def secret() -> Check:
    """A string (a password): only its type is checked here, and it is never repeated in an error message."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidParams(f"{name} must be a string")
        return value

    return _described(check, {"type": "string", "format": "password", "writeOnly": True})


def text_list(max_items: int, max_length: int) -> Check:
    """A non-empty list of at most `max_items` strings, each of 1 to `max_length` characters."""

    def check(name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise InvalidParams(f"{name} must be a non-empty list of strings, not {_shown(value)}")
        if len(value) > max_items:
            raise InvalidParams(f"{name} has {len(value)} items; at most {max_items} are taken in one call")
        for item in value:
            if not isinstance(item, str) or not item or len(item) > max_length:
                raise InvalidParams(f"{name} must hold strings of 1 to {max_length} characters, not {_shown(item)}")
        return list(dict.fromkeys(value))

    return _described(check, {"type": "array", "minItems": 1, "maxItems": max_items,
                              "items": {"type": "string", "minLength": 1, "maxLength": max_length}})


def _shown(value: Any) -> str:
    """A short rendering of a wrong value for an error message (never a huge one)."""
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
