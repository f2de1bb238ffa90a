"""Hiding secrets wherever configuration is shown: `config show`, `/status`, logs and error messages."""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
# A key named like one of these holds a secret, whatever file or variable it came from.
SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api_?key|credential|private_?key", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&]*")


def is_secret_name(key: str) -> bool:
    """Whether the last part of a dotted key names a secret (password, token, api key, ...)."""
    return bool(SECRET_KEY.search(key.rsplit(".", 1)[-1]))


def mask_url(url: str) -> str:
    """The URL with any password (in the user part or a `password=` query) replaced by the mask."""
    url = _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable url>"
    if password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def mask_secrets(data: Any, secret_keys: Set[str] = frozenset(), prefix: str = "") -> Any:
    """A copy of `data` with secrets masked: by key name, by membership in `secret_keys`, and in URLs."""
    if isinstance(data, Mapping):
        result = {}
        for key, value in data.items():
            dotted = f"{prefix}{key}".lower()
            if not isinstance(value, Mapping) and (dotted in secret_keys or is_secret_name(str(key))):
                result[key] = MASK if value not in (None, "", False) else value
            else:
                result[key] = mask_secrets(value, secret_keys, f"{dotted}.")
        return result
    if isinstance(data, list):
        return [mask_secrets(item, secret_keys, prefix) for item in data]
    if isinstance(data, str) and "://" in data:
        return mask_url(data)
    return data
