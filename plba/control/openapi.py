"""The OpenAPI 3.1 document served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from plba import __version__


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = {"$ref": "#/components/schemas/Error"}
ERRORS = {
    "400": _json(ERROR, "Malformed body or wrong field types."),
    "401": _json(ERROR, "No bearer token, or (once users exist) an unknown, expired or revoked one."),
    "403": _json(ERROR, "The user's role is too small; before any user exists: a wrong token, or none configured."),
    "503": _json(ERROR, "The platform database cannot be read, so no credential can be checked."),
}
OBJECT = {"type": "object"}


def _read(summary: str, schema: dict[str, Any], extra: dict[str, Any] | None = None,
          probe: bool = False) -> dict[str, Any]:
    # Reads other than the probes need a viewer once users exist.
    refusals = {} if probe else {code: ERRORS[code] for code in ("401", "403", "503")}
    responses = {"200": _json(schema, "OK."), **refusals, **(extra or {})}
    return {"get": {"summary": summary, "responses": responses, "security": [{}, {"bearer": []}]}}


def _action(summary: str, code: str, schema: dict[str, Any], body: dict[str, Any] | None = None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}],
                                 "responses": {code: _json(schema, "Accepted." if code == "202" else "OK."),
                                               **ERRORS, **(extra or {})}}
    if body is not None:
        operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return {"post": operation}


PROBE = {"type": "object", "properties": {"reason": {"type": "string"}}}


def document() -> dict[str, Any]:
    """The OpenAPI document of the control plane."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "PLBA control plane", "version": __version__},
        "paths": {
            "/health": _read("Overall health and each component.", {"$ref": "#/components/schemas/Health"},
                             {"503": _json({"$ref": "#/components/schemas/Health"}, "Unhealthy.")}, probe=True),
            "/health/live": _read("Liveness: the process makes progress.", PROBE,
                                  {"503": _json(PROBE, "A worker is stuck.")}, probe=True),
            "/health/ready": _read("Readiness: started, not stopping, critical components ok.", PROBE,
                                   {"503": _json(PROBE, "Not ready.")}, probe=True),
            "/status": _read("State, workers, queues and plugins.", {"$ref": "#/components/schemas/Status"}),
            "/metrics": {"get": {"summary": "Prometheus text format.", "security": [{}, {"bearer": []}],
                                 "responses": {"200": {"description": "OK.",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/plugins": _read("The plugins, as `plba plugins list --json`.",
                              {"type": "array", "items": {"$ref": "#/components/schemas/Plugin"}}),
            "/openapi.json": _read("This document.", OBJECT),
            "/schedules": _read("Every schedule with its timing, next and last run, outcome and counters.",
                                {"type": "object", "properties": {"schedules": {
                                    "type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}}),
            "/actions/stop": _action(
                "Stop gracefully (or forced) after answering.", "202", OBJECT,
                {"type": "object", "additionalProperties": False,
                 "properties": {"force": {"type": "boolean", "default": False},
                                "timeout": {"type": ["number", "null"], "minimum": 0, "maximum": 86400}}},
                {"409": _json(ERROR, "Already stopped.")}),
            "/actions/start": _action("Start a stopped runtime again.", "202", OBJECT,
                                      {"type": "object", "additionalProperties": False},
                                      {"409": _json(ERROR, "Not stopped.")}),
            "/actions/schedules/{name}/run": {"post": {
                **_action("Fire a schedule once now, in the whole fleet.", "202", OBJECT,
                          {"type": "object", "additionalProperties": False},
                          {"404": _json(ERROR, "No schedule of that name."),
                           "409": _json(ERROR, "Its previous run is still going, or it ran this second.")})["post"],
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]}},
            "/actions/reload": _action(
                "Reload the configuration.", "200",
                {"type": "object", "properties": {"changed": {"type": "array", "items": {"type": "string"}}}},
                {"type": "object", "additionalProperties": False},
                {"422": _json({"type": "object", "properties": {"error": {"type": "string"},
                                                                "problems": {"type": "array",
                                                                             "items": {"type": "string"}}}},
                              "Invalid configuration; the current one stays in force.")}),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a user's token (`plba tokens create`) or "
                                                          "platform.control.token (the service, role admin)"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Health": {"type": "object", "required": ["status", "components"],
                           "properties": {"status": {"enum": ["ok", "degraded", "unhealthy"]},
                                          "components": OBJECT}},
                "Status": {"type": "object", "required": ["state", "workers", "queues", "plugins"],
                           "properties": {"state": {"type": "string"}, "workers": {"type": "array"},
                                          "queues": OBJECT, "plugins": {"type": "array"}}},
                "Schedule": {"type": "object",
                             "required": ["name", "every", "cron", "timezone", "enabled", "next_run", "last_run",
                                          "last_outcome", "last_error", "runs", "skipped", "failures"],
                             "properties": {"name": {"type": "string"}, "every": {"type": ["number", "null"]},
                                            "cron": {"type": ["string", "null"]}, "timezone": {"type": "string"},
                                            "enabled": {"type": "boolean"},
                                            "next_run": {"type": ["string", "null"], "format": "date-time"},
                                            "last_run": {"type": ["string", "null"], "format": "date-time"},
                                            "last_outcome": {"enum": ["ok", "failed", "skipped", "running", None]},
                                            "last_error": {"type": ["string", "null"]},
                                            "runs": {"type": "integer"}, "skipped": {"type": "integer"},
                                            "failures": {"type": "integer"}}},
                "Plugin": {"type": "object",
                           "required": ["name", "distribution", "version", "hooks", "status", "error"],
                           "properties": {"name": {"type": "string"}, "distribution": {"type": ["string", "null"]},
                                          "version": {"type": ["string", "null"]},
                                          "hooks": {"type": "array", "items": {"type": "string"}},
                                          "status": {"enum": ["loaded", "failed", "disabled"]},
                                          "error": {"type": ["string", "null"]}}},
            },
        },
    }
