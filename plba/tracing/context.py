"""The current trace context, kept in a context variable, and its W3C `traceparent` form."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import random
import re
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, NamedTuple, ParamSpec, TypeVar

_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class SpanContext(NamedTuple):
    """Identifies one span: the trace it belongs to, its own id and its parent's.

    A named tuple because one is built for every task a worker runs: it is the cheapest
    immutable record Python has.
    """

    trace_id: str
    span_id: str
    parent_id: str | None = None

    @classmethod
    def new_root(cls) -> SpanContext:
        """A span that starts a new trace."""
        return cls(_random_hex(128), _random_hex(64))

    def child(self) -> SpanContext:
        """A new span inside this one."""
        return SpanContext(self.trace_id, _random_hex(64), self.span_id)

    @property
    def traceparent(self) -> str:
        """This context as a W3C Trace Context header value."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    @classmethod
    def from_traceparent(cls, value: Any) -> SpanContext | None:
        """Parse a `traceparent` value; None when it is missing or malformed."""
        if not isinstance(value, str) or not _TRACEPARENT.fullmatch(value):
            return None
        trace_id, span_id = value[3:35], value[36:52]
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:  # all-zero ids are invalid in W3C
            return None
        return cls(trace_id, span_id)


def _random_hex(bits: int) -> str:
    # Trace ids need uniqueness, not secrecy; random is several times cheaper than os.urandom,
    # and it reseeds itself in forked children. Zero is invalid in W3C Trace Context.
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


P = ParamSpec("P")
R = TypeVar("R")

_current: contextvars.ContextVar[SpanContext | None] = contextvars.ContextVar("plba_span", default=None)


def current_span() -> SpanContext | None:
    """The span current in this thread or task, if any."""
    return _current.get()


@contextlib.contextmanager
def use_span(span: SpanContext | None) -> Iterator[SpanContext | None]:
    """Make `span` current for the duration of the block."""
    token = _current.set(span)
    try:
        yield span
    finally:
        _current.reset(token)


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind `fn` to the context current now, so it keeps the trace when another thread runs it.

    Threads and ThreadPoolExecutor start from an empty context: `executor.submit(wrap(fn), x)`
    carries the current trace (and every other context variable) into the pool.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        # One Context cannot be entered by two threads at once, and a wrapped function may be
        # mapped over many items in parallel: each call runs in its own copy.
        return captured.copy().run(fn, *args, **kwargs)

    return run_in_context


def inject(metadata: MutableMapping[str, Any]) -> None:
    """Store the current trace context in task metadata, unless it already carries one."""
    span = _current.get()
    if span is not None and "traceparent" not in metadata:
        metadata["traceparent"] = span.traceparent


def extract(metadata: MutableMapping[str, Any] | None) -> SpanContext | None:
    """The trace context a task carries, if any."""
    return SpanContext.from_traceparent((metadata or {}).get("traceparent"))
