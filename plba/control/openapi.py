"""The OpenAPI 3.1 document served at `/openapi.json`."""

from __future__ import annotations

import re
from typing import Any

from plba import __version__
from plba.actions import PLATFORM_ACTIONS, Action
from plba.actions.params import schema_of


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


ACTION_ERRORS = {
    "404": _json(ERROR, "No such target (queue, logger, instance, schedule, user, token)."),
    "409": _json(ERROR, "Not possible in the current state, or not supported by the target."),
    "422": _json(ERROR, "Well formed, but cannot be applied (an invalid new configuration: `problems`)."),
}


def _with_name(path_item: dict[str, Any], what: str) -> dict[str, Any]:
    for operation in path_item.values():
        operation["parameters"] = [{"name": "name", "in": "path", "required": True, "description": f"the {what}",
                                    "schema": {"type": "string"}}]
    return path_item


def _openapi_path(route: str) -> str:
    """A Flask route in OpenAPI's spelling: `<name>` becomes `{name}`."""
    return re.sub(r"<(\w+)>", r"{\1}", route)


def _declared(action: Action) -> dict[str, Any]:
    """The path item of a declared action: its parameters as the body schema, its role in the summary."""
    body = {"type": "object", "additionalProperties": False,
            "properties": {param.name: {**schema_of(param.check), "description": param.help}
                           for param in action.params},
            "required": [param.name for param in action.params if param.required]}
    item = _action(f"{action.help} (role: {action.role})", str(action.status), OBJECT, body, ACTION_ERRORS)
    return _with_name(item, action.target) if action.target else item


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
            "/status": _read("State, workers, queues, plugins and the last hour's tasks per minute.",
                             {"$ref": "#/components/schemas/Status"}),
            "/metrics": {"get": {"summary": "Prometheus text format.", "security": [{}, {"bearer": []}],
                                 "responses": {"200": {"description": "OK.",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/plugins": _read("The plugins, as `plba plugins list --json`.",
                              {"type": "array", "items": {"$ref": "#/components/schemas/Plugin"}}),
            "/openapi.json": _read("This document.", OBJECT),
            "/schedules": _read("Every schedule with its timing, next and last run, outcome and counters.",
                                {"type": "object", "properties": {"schedules": {
                                    "type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}}),
            "/queues": _read("Every queue's backend, depth, in flight, delayed, dead and paused.",
                             {"type": "object", "properties": {"queues": {
                                 "type": "object", "additionalProperties": {"$ref": "#/components/schemas/Queue"}}}}),
            "/queues/{name}/dead": _with_name(_read(
                "A queue's dead letters, oldest first, payloads masked (`limit`, `cursor`).",
                {"type": "object", "properties": {"tasks": {"type": "array",
                                                            "items": {"$ref": "#/components/schemas/DeadTask"}},
                                                  "next_cursor": {"type": ["string", "null"]}}},
                {"404": _json(ERROR, "No queue of that name.")}), "queue"),
            "/instances": _read("Every live instance sharing platform.cluster.url (just this one without it).",
                                {"type": "object", "properties": {"instances": {
                                    "type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}}),
            "/loggers": _read("The platform's and plugins' loggers and their levels.", OBJECT),
            "/config": _read("The settings in force (secrets masked) and the layer each key came from.",
                             {"type": "object", "properties": {"settings": OBJECT, "origins": OBJECT}}),
            "/audit": _read("The latest audit events, newest first (`limit`).",
                            {"type": "object", "properties": {"events": {
                                "type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}}}}),
            **{_openapi_path(f"/actions/{action.route}"): _declared(action) for action in PLATFORM_ACTIONS},
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
                                          "queues": OBJECT, "plugins": {"type": "array"},
                                          "throughput": {"type": "array",
                                                         "items": {"$ref": "#/components/schemas/Minute"}}}},
                "Minute": {"type": "object", "required": ["minute", "processed", "failed"],
                           "properties": {"minute": {"type": "integer", "description": "its start, epoch seconds"},
                                          "processed": {"type": "integer"}, "failed": {"type": "integer"}}},
                "Queue": {"type": "object",
                          "properties": {"backend": {"type": "string"}, "depth": {"type": "integer"},
                                         "in_flight": {"type": "integer"}, "delayed": {"type": "integer"},
                                         "dead": {"type": "integer"}, "paused": {"type": "boolean"}}},
                "Instance": {"type": "object",
                             "required": ["id", "host", "pid", "version", "state", "started_at", "last_seen",
                                          "plugins", "workers", "control_url"],
                             "properties": {"id": {"type": "string"}, "host": {"type": "string"},
                                            "pid": {"type": "integer"}, "version": {"type": "string"},
                                            "state": {"type": "string"},
                                            "started_at": {"type": ["string", "null"], "format": "date-time"},
                                            "last_seen": {"type": "string", "format": "date-time"},
                                            "plugins": {"type": "array", "items": {"type": "string"}},
                                            "workers": {"type": "object",
                                                        "properties": {"busy": {"type": "integer"},
                                                                       "total": {"type": "integer"}}},
                                            "control_url": {"type": ["string", "null"]}}},
                "DeadTask": {"type": "object",
                             "required": ["id", "name", "attempts", "error", "dead_at", "trace_id", "payload"],
                             "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                            "attempts": {"type": "integer"}, "error": {"type": ["string", "null"]},
                                            "dead_at": {"type": ["string", "null"], "format": "date-time"},
                                            "trace_id": {"type": ["string", "null"]}, "payload": {}}},
                "AuditEvent": {"type": "object",
                               "required": ["at", "actor", "action", "target", "params", "outcome", "remote_addr"],
                               "properties": {"at": {"type": "string", "format": "date-time"},
                                              "actor": {"type": "string"}, "action": {"type": "string"},
                                              "target": {"type": ["string", "null"]}, "params": OBJECT,
                                              "outcome": {"enum": ["ok", "refused", "rejected", "failed"]},
                                              "remote_addr": {"type": ["string", "null"]},
                                              "detail": {"type": ["string", "null"]}}},
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
