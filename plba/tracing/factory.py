"""The trace transport `platform.tracing.transport` names, built from the settings."""

from __future__ import annotations

from typing import Any

from plba.errors import ConfigError
from plba.tracing.transports import JsonlTraceTransport, LogTraceTransport, NoOpTraceTransport, TraceTransport


def build_transport(settings: Any) -> TraceTransport:
    """The transport named by `platform.tracing.transport`."""
    kind = str(settings.get("platform.tracing.transport", "log")).lower()
    if kind == "noop":
        return NoOpTraceTransport()
    if kind == "log":
        return LogTraceTransport()
    if kind == "jsonl":
        return JsonlTraceTransport(settings.get("platform.tracing.path", "var/traces.jsonl"))
    if kind == "otel":
        try:
            from plba.tracing.otel import OtelTraceTransport
        except ImportError as exc:
            raise ConfigError(f"platform.tracing.transport = 'otel' needs the otel extra "
                              f"(pip install 'plba[otel]'): {exc}") from exc
        return OtelTraceTransport.from_settings(settings)
    raise ConfigError(f"platform.tracing.transport: unknown transport {kind!r} (noop, log, jsonl or otel)")
