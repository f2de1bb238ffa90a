"""The fleet: list the live instances sharing `platform.cluster.url`, and ask one of them to stop."""

from __future__ import annotations

from typing import Any

from plba.actions.errors import UnknownTarget
from plba.actions.lifecycle import STOP_PARAMS, stop
from plba.actions.registry import PLATFORM_ACTIONS, Invocation

# How long a stop request waits for its instance's next heartbeat before it is forgotten.
REQUEST_TTL = 60.0


def instances(runtime: Any) -> list[dict[str, Any]]:
    """Every live instance's latest heartbeat, oldest first; just this one without a cluster URL."""
    store = runtime.cluster
    if store is None:
        return [runtime.instance_record()]
    return sorted(store.instances(), key=lambda record: (str(record.get("started_at")), str(record.get("id"))))


@PLATFORM_ACTIONS.action("instances.stop", role="operator", route="instances/<name>/stop", params=STOP_PARAMS,
                         target="instance", status=202)
def stop_instance(call: Invocation) -> dict[str, Any]:
    """Ask an instance of the fleet to stop gracefully (or forced); it takes the request with its next heartbeat."""
    runtime = call.runtime
    store = runtime.cluster
    if store is not None and call.target == store.owner:
        return {**stop(call), "instance": call.target}
    request = {"force": call.params["force"], "timeout": call.params["timeout"], "by": call.actor,
               "from": store.owner if store else None}
    if store is None or not store.request_stop(call.target, request, REQUEST_TTL):
        live = ", ".join(str(record.get("id")) for record in instances(runtime)) or "none"
        raise UnknownTarget(f"no live instance {call.target!r} (live: {live})")
    return {"accepted": "stop", "instance": call.target, "force": call.params["force"],
            "timeout": call.params["timeout"]}
