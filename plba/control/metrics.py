"""`GET /metrics`: Prometheus text built from runtime snapshots by a collector, with no global registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("not_started", "starting", "idle", "busy", "stopping", "stopped")
TASK_COUNTERS = {
    "processed": "Tasks whose handler returned.",
    "failed": "Handler runs that raised.",
    "retried": "Failed tasks scheduled for another attempt.",
    "dead_lettered": "Tasks moved to the dead-letter queue after their last attempt.",
}
QUEUE_GAUGES = {
    "depth": "Tasks ready to be consumed.",
    "in_flight": "Tasks leased by a consumer and not yet acknowledged.",
    "delayed": "Tasks waiting for their retry delay.",
    "dead": "Tasks in the dead-letter queue.",
    "paused": "1 while the queue is paused (no consumer leases from it), else 0.",
}


class RuntimeCollector:
    """Reads the runtime on every scrape, so the numbers are never stale or double-registered."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family."""
        yield from self._state()
        yield from self._workers()
        yield from self._queues()
        yield from self._schedules()

    def _state(self) -> Iterator[Metric]:
        state = self.runtime.state
        family = GaugeMetricFamily("plba_runtime_state", "1 for the runtime's current state.", labels=["state"])
        for name in STATES:
            family.add_metric([name], 1.0 if name == state else 0.0)
        yield family
        yield GaugeMetricFamily("plba_runtime_failed", "1 when a critical worker could not be kept alive.",
                                value=1.0 if self.runtime.failure else 0.0)

    def _workers(self) -> Iterator[Metric]:
        supervisor = self.runtime.supervisor
        workers = supervisor.workers if supervisor else []
        counters = {key: CounterMetricFamily(f"plba_tasks_{key}", help_text, labels=["worker"])
                    for key, help_text in TASK_COUNTERS.items()}
        durations = HistogramMetricFamily("plba_task_duration_seconds", "Handler run time.", labels=["worker"])
        restarts = CounterMetricFamily("plba_worker_restarts", "Restarts after a crash.", labels=["worker"])
        in_flight = GaugeMetricFamily("plba_worker_in_flight", "Tasks being handled now.", labels=["worker"])
        statuses = {status["name"]: status for status in supervisor.statuses()} if supervisor else {}
        for worker in workers:
            status = statuses.get(worker.name, {})
            # Workers without metrics of their own (the default) report processed/failed through their status.
            readings = worker.metrics() or status
            for key, family in counters.items():
                family.add_metric([worker.name], float(readings.get(key, 0) or 0))
            histogram = readings.get("durations")
            if histogram:
                buckets = [(floatToGoString(bound), float(count)) for bound, count in histogram["buckets"]]
                durations.add_metric([worker.name], buckets, float(histogram["sum"]))
            restarts.add_metric([worker.name], float(status.get("restarts", 0)))
            in_flight.add_metric([worker.name], float(status.get("in_flight", 0) or 0))
        yield from counters.values()
        yield from (durations, restarts, in_flight)

    def _queues(self) -> Iterator[Metric]:
        registry = self.runtime.registry
        snapshots = {}
        for name, queue in (registry.queues.items() if registry else []):
            try:
                snapshots[name] = queue.stats()
            except Exception:  # noqa: BLE001 - an unreachable queue is reported by /health, not here
                continue
        for key, help_text in QUEUE_GAUGES.items():
            family = GaugeMetricFamily(f"plba_queue_{key}", help_text, labels=["queue"])
            for name, stats in snapshots.items():
                if isinstance(stats.get(key), (int, float)):
                    family.add_metric([name], float(stats[key]))
            yield family


    def _schedules(self) -> Iterator[Metric]:
        family = CounterMetricFamily("plba_schedule_runs", "Schedule firings by outcome (ok, failed, skipped).",
                                     labels=["schedule", "outcome"])
        scheduler = self.runtime.scheduler
        for name, outcomes in (scheduler.outcomes() if scheduler else {}).items():
            for outcome, count in outcomes.items():
                family.add_metric([name, outcome], float(count))
        yield family


def render(runtime: Any) -> bytes:
    """The Prometheus exposition text for `runtime`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    return generate_latest(registry)
