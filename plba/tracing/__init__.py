"""Tracing: a context that follows the code, propagated through task metadata."""

from plba.tracing.context import SpanContext, current_span, extract, inject, use_span
from plba.tracing.factory import build_transport
from plba.tracing.service import Span, TraceService
from plba.tracing.transports import JsonlTraceTransport, LogTraceTransport, NoOpTraceTransport, TraceTransport

__all__ = [
    "JsonlTraceTransport",
    "LogTraceTransport",
    "NoOpTraceTransport",
    "Span",
    "SpanContext",
    "TraceService",
    "TraceTransport",
    "build_transport",
    "current_span",
    "extract",
    "inject",
    "use_span",
]
