"""The thread that writes coalesced updates out when their window ends, and
runs the periodic cleanup.

A coalesced update is never lost: when its session's window ends it is
written, even if no further call comes. With a clock that can be advanced by
hand (``testing.FakeClock``) there is no thread: advancing the clock runs
what has come due, so tests never sleep.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable

from ..core.clock import Clock

__all__ = ["WindowFlusher"]

logger = logging.getLogger(__name__)


class WindowFlusher:
    """Calls ``flush_due`` with the sessions whose window has ended, and
    ``cleanup`` every ``cleanup_interval_s``: from a thread of its own, or,
    under a manual clock, whenever the clock is advanced."""

    def __init__(
        self,
        clock: Clock,
        flush_due: Callable[[Iterable[str]], None],
        cleanup_interval_s: float,
        cleanup: Callable[[], None],
        *,
        background: bool = True,
    ) -> None:
        self._clock = clock
        self._flush_due = flush_due
        self._cleanup = cleanup
        self._cleanup_interval_s = cleanup_interval_s
        self._next_cleanup_s = clock.monotonic() + cleanup_interval_s
        self._deadlines: list[tuple[float, str]] = []
        self._wakeup = threading.Condition(threading.Lock())
        self._stopped = False
        self._thread: threading.Thread | None = None
        if clock.manual:
            clock.on_advance(self.run_due)
        elif background:
            self._thread = threading.Thread(
                target=self._run, name="celery-progress-flusher", daemon=True
            )
            self._thread.start()

    def schedule(self, session_id: str, deadline_s: float) -> None:
        with self._wakeup:
            first = not self._deadlines or deadline_s < self._deadlines[0][0]
            heapq.heappush(self._deadlines, (deadline_s, session_id))
            if first:
                self._wakeup.notify()

    def _take_due(self, now_s: float) -> list[str]:
        due = []
        while self._deadlines and self._deadlines[0][0] <= now_s:
            due.append(heapq.heappop(self._deadlines)[1])
        return due

    def run_due(self) -> None:
        """Flush what has come due and, when its time has come, clean up."""
        if self._stopped:  # read without the lock: after a fork it may be held for ever
            return
        now_s = self._clock.monotonic()
        with self._wakeup:
            if self._stopped:
                return  # a fake clock still calls its listeners after close()
            due = self._take_due(now_s)
            cleanup_due = now_s >= self._next_cleanup_s
            if cleanup_due:
                self._next_cleanup_s = now_s + self._cleanup_interval_s
        if due:
            self._flush_due(due)
        if cleanup_due:
            self._cleanup()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                if self._stopped:
                    return
                wake_s = self._next_cleanup_s
                if self._deadlines:
                    wake_s = min(wake_s, self._deadlines[0][0])
                delay_s = wake_s - self._clock.monotonic()
                if delay_s > 0:
                    self._wakeup.wait(delay_s)
                if self._stopped:
                    return
            try:
                self.run_due()
            except Exception:
                logger.exception("progress flusher failed")

    def abandon(self) -> None:
        """In a forked child: never run again. The parent's thread is gone and
        its lock may be held for ever, so neither is touched."""
        self._stopped = True

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
