"""A small urllib client for a running instance's control plane, as `plba status` and `plba stop` use it."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from plba.errors import ControlPlaneError

TOKEN_HINT = ("pass --token or set PLBA_TOKEN to a user's token (`plba tokens create`), or set "
              "platform.control.token in .secrets.toml (or PLBA_PLATFORM__CONTROL__TOKEN) to the instance's token")


class ControlClient:
    """Calls one control plane; raises ControlPlaneError with one clear line when it cannot."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str, ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        """GET `path`: (status, JSON body); statuses outside `ok` raise."""
        return self.request("GET", path, None, ok)

    def post(self, path: str, body: dict[str, Any] | None = None, ok: tuple[int, ...] = (200, 202)) -> tuple[int, Any]:
        """POST a JSON body to `path`: (status, JSON body); statuses outside `ok` raise."""
        return self.request("POST", path, body or {}, ok)

    def request(self, method: str, path: str, body: Any, ok: tuple[int, ...]) -> tuple[int, Any]:
        """One request; answers outside `ok` become ControlPlaneError naming the cause."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                code, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            code, payload = exc.code, exc.read()
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ControlPlaneError(f"no PLBA control plane answers at {self.url} ({reason}); is `plba run` "
                                    f"running with the same settings? (or pass --url)") from None
        answer = _decode(payload)
        if code not in ok:
            raise ControlPlaneError(self._explain(method, path, code, answer))
        return code, answer

    def _explain(self, method: str, path: str, code: int, answer: Any) -> str:
        error = answer.get("error") if isinstance(answer, dict) else None
        where = f"{method} {self.url}{path}"
        if code == 401:
            refused = error if self.token and error else "the control plane needs a token"
            return f"{where}: {refused}; {TOKEN_HINT}"
        if code == 403:
            # The server's own message already says how to configure a token when it has none, and
            # a refusal for a too small role is not fixed by another token setting.
            hint = "" if ".secrets.toml" in str(error) or " role" in str(error) else f"; {TOKEN_HINT}"
            return f"{where}: refused: {error}{hint}"
        return f"{where}: {code} {error or 'unexpected answer'}"


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None
