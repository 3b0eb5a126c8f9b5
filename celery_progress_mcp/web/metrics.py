"""``/metrics`` for Prometheus, in a registry of the app's own.

Two sources, told apart by name:

* read from the store when Prometheus scrapes, so true across restarts of
  the dashboard and the same from every replica: sessions by state, active
  sessions per operation, and the store's lifetime counters of ended
  sessions (``celery_progress_sessions_finished_total`` by final state,
  ``celery_progress_session_duration_seconds``: the count and sum of
  completed sessions' durations, a summary without quantiles);
* this dashboard process's own, counted since it started and back to zero
  when it restarts: every such metric is named ``celery_progress_process_*``
  and its help says so (events and updates as the bus delivered them,
  durations of the completions it saw, in buckets, and its failed store
  calls).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ..core.models import ProgressEvent, ProgressEventType, ProgressStats
from ..core.states import SessionStatus
from ..monitor.tracker_access import MAX_ACTIVE_SCAN_ROWS, TrackerAccess

__all__ = ["CONTENT_TYPE", "DashboardMetrics"]

#: The text exposition format's content type.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Histogram buckets of session durations, in seconds (1 s to 1 day).
DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)

_PREFIX = "celery_progress"
#: The prefix of the metrics this process counts itself (they restart from zero with it).
_OWN = f"{_PREFIX}_process"
_OWN_HELP = " This dashboard process's own count since it started (zero after a restart)."


class DashboardMetrics:
    """The app's registry, fed by the bus and read from the store."""

    def __init__(self, access: TrackerAccess) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._events = Counter(
            f"{_OWN}_events",
            "Progress events the bus delivered to this dashboard, by type." + _OWN_HELP,
            ["event_type"],
            registry=self.registry,
        )
        self._updates = Counter(
            f"{_OWN}_updates",
            "Progress updates (ProgressUpdated events) the bus delivered." + _OWN_HELP,
            registry=self.registry,
        )
        self.store_errors = Counter(
            f"{_OWN}_store_errors",
            "Store calls of this dashboard that failed, and failed scrapes of the store."
            + _OWN_HELP,
            registry=self.registry,
        )
        self._durations = Histogram(
            f"{_OWN}_session_duration_seconds",
            "Durations of the session completions this dashboard saw, from creation to "
            f"completion; {_PREFIX}_session_duration_seconds has the store's lifetime count "
            "and sum." + _OWN_HELP,
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
            "Sessions that ended, lifetime, by final state (the store's counters).",
            labels=["state"],
        )
        finished.add_metric([SessionStatus.COMPLETED.value], stats.total_completed)
        finished.add_metric([SessionStatus.FAILED.value], stats.total_failed)
        finished.add_metric([SessionStatus.CANCELLED.value], stats.total_cancelled)
        yield finished
        created = CounterMetricFamily(f"{_PREFIX}_sessions_created", "Sessions created, lifetime.")
        created.add_metric([], stats.total_created)
        yield created
        yield _lifetime_durations(stats)
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
            "Average duration of completed sessions, lifetime (the store's counters).",
        )
        average.add_metric([], stats.avg_session_duration_seconds)
        yield average


def _lifetime_durations(stats: ProgressStats) -> Metric:
    """Completed sessions' durations as the store counts them: ``_count`` and ``_sum``.

    The store keeps the count and the total of durations, not their
    distribution, so this is a summary without quantiles (``rate(_sum) /
    rate(_count)`` is the mean over a range); the sum is the store's average
    times its count.
    """
    durations = SummaryMetricFamily(
        f"{_PREFIX}_session_duration_seconds",
        "Durations of completed sessions, from creation to completion, lifetime "
        "(the store's counters: true across restarts of the dashboard).",
    )
    count = stats.total_completed
    total_s = stats.avg_session_duration_seconds * count
    durations.add_metric([], count_value=count, sum_value=total_s)
    return durations
