"""The audit trail: one event per action invocation, allowed or refused, in the platform database and the log."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from plba.masking import mask_secrets

logger = logging.getLogger("plba.audit")

# Lists longer than this (a requeue of 1,000 ids) are kept in the audit log as their first items and a count.
KEPT_ITEMS = 20


@dataclass(frozen=True)
class AuditEvent:
    """One invocation: when, who, what, on which target, with which parameters, how it ended, from where."""

    at: float
    actor: str
    action: str
    target: str | None
    params: dict[str, Any]
    outcome: str
    remote_addr: str | None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event in the `GET /audit` shape: `at` as ISO 8601 UTC."""
        data = asdict(self)
        data["at"] = datetime.fromtimestamp(self.at, UTC).isoformat()
        return data


class AuditStore(Protocol):
    """Where events are kept: the platform database, or memory for a runtime that has none."""

    def append(self, event: AuditEvent) -> None:
        """Keep `event`."""

    def recent(self, limit: int) -> list[AuditEvent]:
        """The latest `limit` events, newest first."""


class MemoryAuditStore:
    """Events in a list, newest last; for tests and embedding without a database."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        """Keep `event`."""
        self.events.append(event)

    def recent(self, limit: int) -> list[AuditEvent]:
        """The latest `limit` events, newest first."""
        return list(reversed(self.events[-limit:]))


class AuditLog:
    """Writes each event to its store and to the `plba.audit` logger; a store that fails is logged, not raised.

    The action has happened (or been refused) by the time its event is written: a database that
    cannot take the event must not turn a done action into an error for its caller.
    """

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    def write(self, event: AuditEvent) -> AuditEvent:
        """Mask and shorten the parameters, then keep and log the event; returns what was kept."""
        kept = AuditEvent(event.at, event.actor, event.action, event.target, summarised(mask_secrets(event.params)),
                          event.outcome, event.remote_addr, event.detail)
        logger.info("audit: %s %s%s by %s from %s: %s%s", kept.action, kept.target or "",
                    "" if not kept.params else f" {json.dumps(kept.params, default=str)}", kept.actor,
                    kept.remote_addr or "-", kept.outcome, f" ({kept.detail})" if kept.detail else "")
        try:
            self.store.append(kept)
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            logger.error("audit: the event above could not be stored: %s: %s", type(exc).__name__, exc)
        return kept

    def recent(self, limit: int) -> list[AuditEvent]:
        """The latest `limit` events, newest first."""
        return self.store.recent(limit)


def summarised(params: Any) -> Any:
    """`params` with every list longer than KEPT_ITEMS cut to its first items and a count of the rest."""
    if isinstance(params, dict):
        return {key: summarised(value) for key, value in params.items()}
    if isinstance(params, list) and len(params) > KEPT_ITEMS:
        return [*params[:KEPT_ITEMS], f"... {len(params) - KEPT_ITEMS} more"]
    return params
