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
        return cls(_random_hex(16), _random_hex(8))

    def child(self) -> SpanContext:
        """A new span inside this one."""
        # Inlined _random_hex(8), and tuple.__new__ skips the generated __new__'s argument
        # handling: one child is made per task.
        span_id = (random.getrandbits(64) or 1).to_bytes(8, "big").hex()
        return tuple.__new__(SpanContext, (self.trace_id, span_id, self.span_id))

    @property
    def traceparent(self) -> str:
        """This context as a W3C Trace Context header value."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    @classmethod
    def from_traceparent(cls, value: Any) -> SpanContext | None:
        """Parse a `traceparent` value; None when it is missing or malformed."""
        if not isinstance(value, str) or len(value) != _TRACEPARENT_LENGTH:
            return None
        return _parse_traceparent(value)


_TRACEPARENT_LENGTH = 55


# The tasks of one trace carry the same value, and a worker parses it once per task: remember the
# last few thousand (each at most 55 characters, checked above).
@functools.lru_cache(maxsize=4096)
def _parse_traceparent(value: str) -> SpanContext | None:
    if not _TRACEPARENT.fullmatch(value):
        return None
    trace_id, span_id = value[3:35], value[36:52]
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:  # all-zero ids are invalid in W3C
        return None
    return SpanContext(trace_id, span_id)


def _random_hex(size: int) -> str:
    # Trace ids need uniqueness, not secrecy; random is several times cheaper than os.urandom,
    # and it reseeds itself in forked children. Zero is invalid in W3C Trace Context.
    return (random.getrandbits(size * 8) or 1).to_bytes(size, "big").hex()


P = ParamSpec("P")
R = TypeVar("R")

# Holds the current SpanContext, or the span being recorded (which has its context as `.context`):
# one variable to set and reset per span instead of two.
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("plba_span", default=None)


def current_span() -> SpanContext | None:
    """The span current in this thread or task, if any."""
    value = _current.get()
    return value if value is None or type(value) is SpanContext else value.context


@contextlib.contextmanager
def use_span(span: SpanContext | None) -> Iterator[SpanContext | None]:
    """Make `span` current for the duration of the block."""
    token = _current.set(span)
    try:
        yield span
    finally:
        _current.reset(token)


def call_in_span(span: SpanContext | None, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call `fn` with `span` current: `with use_span(span): fn(...)` at a fraction of the cost per call."""
    token = _current.set(span)
    try:
        return fn(*args, **kwargs)
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
    span = current_span()
    if span is not None and "traceparent" not in metadata:
        metadata["traceparent"] = span.traceparent


def extract(metadata: MutableMapping[str, Any] | None) -> SpanContext | None:
    """The trace context a task carries, if any."""
    return SpanContext.from_traceparent(metadata.get("traceparent")) if metadata else None
