"""``/metrics`` for Prometheus, in a registry of the app's own.

Two sources: counters fed by the event bus as events pass (every process's
events where the bus crosses processes), and gauges read from the store when
Prometheus scrapes (sessions by state, lifetime totals, active sessions per
operation), so a restarted dashboard reports the truth at once.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..core.models import ProgressEvent, ProgressEventType
from ..core.states import SessionStatus
from .tracker_access import MAX_ACTIVE_SCAN_ROWS, TrackerAccess

__all__ = ["CONTENT_TYPE", "DashboardMetrics"]

#: The text exposition format's content type.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Histogram buckets of session durations, in seconds (1 s to 1 day).
DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)

_PREFIX = "celery_progress"


class DashboardMetrics:
    """The app's registry, fed by the bus and read from the store."""

    def __init__(self, access: TrackerAccess) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._events = Counter(
            f"{_PREFIX}_events",
            "Progress events published, by type.",
            ["event_type"],
            registry=self.registry,
        )
        self._updates = Counter(
            f"{_PREFIX}_updates",
            "Progress updates written (ProgressUpdated events).",
            registry=self.registry,
        )
        self.store_errors = Counter(
            f"{_PREFIX}_store_errors",
            "Store calls of the dashboard that failed, and failed scrapes of the store.",
            registry=self.registry,
        )
        self._durations = Histogram(
            f"{_PREFIX}_session_duration_seconds",
            "Duration of completed sessions, from creation to completion.",
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._by_type = {kind: self._events.labels(kind.value) for kind in ProgressEventType}
        self.registry.register(_StoreCollector(access, self.store_errors.inc))

    def observe(self, event: ProgressEvent) -> None:
        """Count one event (called on the publishing thread: must stay cheap and never raise)."""
        kind = event.event_type
        self._by_type[kind].inc()
        if kind is ProgressEventType.PROGRESS_UPDATED:
            self._updates.inc()
        elif kind is ProgressEventType.SESSION_COMPLETED:
            seconds = event.data.get("duration_seconds")
            if isinstance(seconds, int | float):
                self._durations.observe(seconds)

    def render(self) -> bytes:
        """The exposition text (blocking: it reads the store)."""
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(self, access: TrackerAccess, count_error: Callable[[], None]) -> None:
        self._access = access
        self._count_error = count_error

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        try:
            stats, active = self._access.scrape()
        except Exception:
            self._count_error()
            up = GaugeMetricFamily(f"{_PREFIX}_store_up", "1 if the store answered the scrape.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily(f"{_PREFIX}_store_up", "1 if the store answered the scrape.")
        up.add_metric([], 1)
        yield up
        sessions = GaugeMetricFamily(
            f"{_PREFIX}_sessions", "Sessions in the store, by state.", labels=["state"]
        )
        for status in SessionStatus:
            sessions.add_metric([status.value], stats.sessions_by_state.get(status, 0))
        yield sessions
        finished = CounterMetricFamily(
            f"{_PREFIX}_sessions_finished",
            "Sessions that ended, lifetime, by final state.",
            labels=["state"],
        )
        finished.add_metric([SessionStatus.COMPLETED.value], stats.total_completed)
        finished.add_metric([SessionStatus.FAILED.value], stats.total_failed)
        finished.add_metric([SessionStatus.CANCELLED.value], stats.total_cancelled)
        yield finished
        created = CounterMetricFamily(f"{_PREFIX}_sessions_created", "Sessions created, lifetime.")
        created.add_metric([], stats.total_created)
        yield created
        per_operation = GaugeMetricFamily(
            f"{_PREFIX}_active_sessions",
            "Active sessions (initializing, in progress, paused), by operation.",
            labels=["operation"],
        )
        for operation, count in sorted(Tally(s.operation_id for s in active).items()):
            per_operation.add_metric([operation], count)
        yield per_operation
        truncated = GaugeMetricFamily(
            f"{_PREFIX}_active_sessions_truncated",
            f"1 when more than {MAX_ACTIVE_SCAN_ROWS} sessions are active and "
            f"{_PREFIX}_active_sessions counts only the newest of them.",
        )
        truncated.add_metric([], 1 if len(active) >= MAX_ACTIVE_SCAN_ROWS else 0)
        yield truncated
        average = GaugeMetricFamily(
            f"{_PREFIX}_average_session_duration_seconds",
            "Average duration of completed sessions, lifetime.",
        )
        average.add_metric([], stats.avg_session_duration_seconds)
        yield average
