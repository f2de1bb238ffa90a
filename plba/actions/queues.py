"""Queue controls for operators: read queues and dead letters; requeue, purge, pause and resume as actions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from plba.actions.errors import InvalidParams, UnknownTarget, Unsupported
from plba.actions.params import Param, boolean, choice, text_list
from plba.actions.registry import PLATFORM_ACTIONS, Invocation
from plba.errors import UnsupportedQueueOperation
from plba.masking import mask_secrets

# Ids a requeue takes in one call; more is split by the caller (or is `all`).
MAX_IDS = 1_000
# A task id is a UUID today; the limit only keeps a hostile body from costing much.
MAX_ID_LENGTH = 200
# Dead letters one `GET /queues/<name>/dead` returns at most, and by default.
MAX_DEAD_PAGE = 1_000
DEFAULT_DEAD_PAGE = 100
# The page size used to find which asked-for ids are dead before any is moved.
_SCAN_PAGE = 1_000
STATS_KEYS = ("backend", "depth", "in_flight", "delayed", "dead", "paused")

REQUEUE_PARAMS = (
    Param("ids", text_list(MAX_IDS, MAX_ID_LENGTH), f"ids of dead tasks to move back (at most {MAX_IDS:,})"),
    Param("all", boolean(), "true: move every dead task back", default=False),
)
PURGE_PARAMS = (Param("what", choice(("dead", "ready")), "`dead` or `ready`: which tasks to delete", required=True),)


def queue_of(runtime: Any, name: str | None) -> Any:
    """The runtime's queue called `name`; UnknownTarget naming the known ones otherwise."""
    queues = runtime.registry.queues if runtime.registry else {}
    if name not in queues:
        raise UnknownTarget(f"no queue named {name!r} (known: {', '.join(sorted(queues)) or 'none'})")
    return queues[name]


def readings(runtime: Any) -> dict[str, dict[str, Any]]:
    """Every queue's backend, depth, in flight, delayed, dead and paused (or the error that stopped the reading)."""
    result = {}
    for name, queue in (runtime.registry.queues.items() if runtime.registry else []):
        try:
            stats = queue.stats()
        except Exception as exc:  # noqa: BLE001 - an unreachable queue says why instead of failing the list
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        result[name] = {key: stats.get(key) for key in STATS_KEYS}
    return result


def dead_letters(runtime: Any, name: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of queue `name`'s dead letters, oldest first, payloads masked; `next_cursor` for the next page."""
    queue = queue_of(runtime, name)
    try:
        page = queue.list_dead(limit=limit, cursor=cursor)
    except UnsupportedQueueOperation as exc:
        raise Unsupported(str(exc)) from None
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None
    tasks = []
    for task in page.tasks:
        shown = task.to_dict()
        shown["payload"] = mask_secrets(shown["payload"])
        tasks.append(shown)
    return {"tasks": tasks, "next_cursor": page.next_cursor}


@PLATFORM_ACTIONS.action("queues.requeue", role="operator", route="queues/<name>/requeue",
                         params=REQUEUE_PARAMS, target="queue")
def requeue(call: Invocation) -> dict[str, Any]:
    """Move dead tasks back to the queue, attempts reset: the ids given, or all."""
    queue = queue_of(call.runtime, call.target)
    ids, everything = call.params["ids"], call.params["all"]
    if (ids is None) == (not everything):
        raise InvalidParams('give either "ids": [...] or "all": true')
    with _supported():
        if everything:
            return {"moved": queue.requeue_all().moved}
        # Nothing moves unless every id is dead: a typo in one id must not requeue the rest silently.
        unknown = _not_dead(queue, ids)
        if unknown:
            raise UnknownTarget(f"{len(unknown)} of {len(ids)} id(s) are not dead letters of queue "
                                f"{call.target!r}; nothing was moved", unknown=unknown)
        result = queue.requeue(ids)
    # Ids another requeue moved between the check and the move are reported, not hidden.
    return {"moved": result.moved, **({"unknown": result.unknown} if result.unknown else {})}


@PLATFORM_ACTIONS.action("queues.purge", role="admin", route="queues/<name>/purge", params=PURGE_PARAMS,
                         target="queue")
def purge(call: Invocation) -> dict[str, Any]:
    """Delete every dead task, or every ready task, of the queue."""
    queue = queue_of(call.runtime, call.target)
    with _supported():
        return {"removed": queue.purge(call.params["what"])}


@PLATFORM_ACTIONS.action("queues.pause", role="operator", route="queues/<name>/pause", target="queue")
def pause(call: Invocation) -> dict[str, Any]:
    """Stop consumers in every instance from leasing from the queue until it is resumed."""
    return _set_paused(call, True)


@PLATFORM_ACTIONS.action("queues.resume", role="operator", route="queues/<name>/resume", target="queue")
def resume(call: Invocation) -> dict[str, Any]:
    """Let consumers in every instance lease from the queue again."""
    return _set_paused(call, False)


def _set_paused(call: Invocation, paused: bool) -> dict[str, Any]:
    queue = queue_of(call.runtime, call.target)
    with _supported():
        (queue.pause if paused else queue.resume)()
    return {"queue": call.target, "paused": paused}


def _not_dead(queue: Any, ids: list[str]) -> list[str]:
    """The ids in `ids` that are not among the queue's dead letters, in the order asked."""
    missing = set(ids)
    cursor = None
    while missing:
        page = queue.list_dead(limit=_SCAN_PAGE, cursor=cursor)
        missing.difference_update(task.id for task in page.tasks)
        cursor = page.next_cursor
        if cursor is None:
            break
    return [task_id for task_id in ids if task_id in missing]


@contextlib.contextmanager
def _supported() -> Iterator[None]:
    """Turn a backend's UnsupportedQueueOperation into the action's one-line refusal."""
    try:
        yield
    except UnsupportedQueueOperation as exc:
        raise Unsupported(str(exc)) from None
