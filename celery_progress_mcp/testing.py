"""Test doubles shipped as public API: a fake clock, an event recorder, a waiter.

``FakeClock`` drives a tracker's windows and cleanup without sleeping::

    clock = FakeClock()
    tracker = ProgressTracker(clock=clock)
    ...
    clock.advance(0.5)   # writes out coalesced updates that came due

``capture_events(tracker)`` records every event published while it is open.

``eventually(check)`` waits for something another thread or process does,
instead of sleeping and hoping::

    session = eventually(lambda: tracker.get_session(task_id), what="the session")
    eventually(lambda: assert_completed(tracker.get_session(task_id)))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeVar

from .core.clock import Clock
from .core.models import ProgressEvent
from .tracking.tracker import ProgressTracker

__all__ = ["DEFAULT_EVENTUALLY_TIMEOUT_S", "FakeClock", "capture_events", "eventually"]

T = TypeVar("T")

#: How long ``eventually`` waits by default, in seconds: long enough for a
#: loaded CI machine to start a worker process and run a task.
DEFAULT_EVENTUALLY_TIMEOUT_S = 30.0
#: How long ``eventually`` sleeps between two checks, in seconds.
EVENTUALLY_INTERVAL_S = 0.01

_EPOCH = datetime(2025, 6, 18, tzinfo=UTC)


class FakeClock(Clock):
    """A clock that moves only when told; advancing it runs what came due."""

    manual: ClassVar[bool] = True

    def __init__(self, start: datetime = _EPOCH) -> None:
        self._lock = threading.Lock()
        self._start = start
        self._elapsed_s = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed_s)

    def monotonic(self) -> float:
        return self._elapsed_s

    def on_advance(self, listener: Callable[[], None]) -> None:
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


def eventually(
    check: Callable[[], T],
    *,
    timeout_s: float = DEFAULT_EVENTUALLY_TIMEOUT_S,
    interval_s: float = EVENTUALLY_INTERVAL_S,
    what: str | None = None,
) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.

    ``check`` may also assert: an ``AssertionError`` (or a ``LookupError``,
    such as ``SessionNotFound`` for a session not written yet) means "not
    yet". After ``timeout_s`` seconds the last such error is raised as the
    cause of an ``AssertionError`` that names ``what``; any other exception
    propagates at once.
    """
    deadline_s = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    value: T | None = None
    while True:
        try:
            value = check()
        except (AssertionError, LookupError) as exc:
            last_error = exc
        else:
            if value:
                return value
            last_error = None
        if time.monotonic() >= deadline_s:
            name = what or getattr(check, "__name__", "the condition")
            detail = f": {last_error}" if last_error is not None else f" (last: {value!r})"
            raise AssertionError(f"{name} did not hold within {timeout_s} s{detail}") from (
                last_error
            )
        time.sleep(interval_s)
