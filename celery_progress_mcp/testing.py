"""Test doubles shipped as public API: a fake clock and an event recorder.

``FakeClock`` drives a tracker's windows and cleanup without sleeping::

    clock = FakeClock()
    tracker = ProgressTracker(clock=clock)
    ...
    clock.advance(0.5)   # writes out coalesced updates that came due

``capture_events(tracker)`` records every event published while it is open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from .core.models import ProgressEvent
from .tracking.tracker import ProgressTracker

__all__ = ["FakeClock", "capture_events"]

_EPOCH = datetime(2025, 6, 18, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told; advancing it runs what came due."""

    def __init__(self, start: datetime = _EPOCH) -> None:
        self._lock = threading.Lock()
        self._start = start
        self._elapsed_s = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed_s)

    def monotonic(self) -> float:
        return self._elapsed_s

    def add_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._elapsed_s += seconds
            listeners = list(self._listeners)
        for listener in listeners:
            listener()


@contextmanager
def capture_events(tracker: ProgressTracker) -> Iterator[list[ProgressEvent]]:
    """Collect the tracker's events into a list while the block runs."""
    captured: list[ProgressEvent] = []
    subscription = tracker.subscribe_to_events()

    def collect() -> None:
        captured.extend(subscription.drain())

    subscription.add_waker(collect)
    try:
        yield captured
    finally:
        collect()
        subscription.close()
