"""``WindowFlusher``: ended windows written out, cleanup on its interval."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from celery_progress_mcp.core.clock import SystemClock
from celery_progress_mcp.testing import FakeClock, eventually
from celery_progress_mcp.tracking.flusher import WindowFlusher


class Calls:
    def __init__(self) -> None:
        self.flushed: list[list[str]] = []
        self.cleanups = 0

    def flush_due(self, session_ids: Iterable[str]) -> None:
        self.flushed.append(list(session_ids))

    def cleanup(self) -> None:
        self.cleanups += 1


def test_a_manual_clock_runs_what_came_due_when_advanced() -> None:
    clock, calls = FakeClock(), Calls()
    flusher = WindowFlusher(clock, calls.flush_due, 10.0, calls.cleanup)
    flusher.schedule("late", 2.0)
    flusher.schedule("early", 1.0)

    clock.advance(1.5)
    clock.advance(1.0)
    clock.advance(8.0)

    assert calls.flushed == [["early"], ["late"]]
    assert calls.cleanups == 1


def test_nothing_runs_once_stopped_or_abandoned() -> None:
    for end in ("stop", "abandon"):
        clock, calls = FakeClock(), Calls()
        flusher = WindowFlusher(clock, calls.flush_due, 1.0, calls.cleanup)
        flusher.schedule("s", 0.5)
        getattr(flusher, end)()
        clock.advance(5.0)
        assert (calls.flushed, calls.cleanups) == ([], 0)


def test_with_the_system_clock_its_thread_writes_a_window_out() -> None:
    calls = Calls()
    flushed = threading.Event()

    def flush_due(session_ids: Iterable[str]) -> None:
        calls.flush_due(session_ids)
        flushed.set()

    clock = SystemClock()
    flusher = WindowFlusher(clock, flush_due, 3600.0, calls.cleanup)
    try:
        flusher.schedule("s", clock.monotonic() + 0.01)
        assert flushed.wait(30)
        assert eventually(lambda: calls.flushed) == [["s"]]
    finally:
        flusher.stop()
    assert calls.cleanups == 0
