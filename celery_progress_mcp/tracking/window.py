"""Coalescing windows: pending updates, and the one thread that writes them out.

Within ``update_interval_ms`` of a session's last write only its latest
update is kept (``Pending``); when the window ends the flusher writes it, so
the last update is never lost even if no further call comes. The same thread
runs the periodic cleanup. With a clock that can be advanced by hand
(``testing.FakeClock``) there is no thread: advancing the clock runs what has
come due, so tests never sleep.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..core.clock import Clock
from ..core.models import JsonDict, SubOperationUpdate
from ..core.states import InProgress

__all__ = ["Pending", "WindowFlusher"]

logger = logging.getLogger(__name__)


class Pending:
    """The latest coalesced update of one session."""

    __slots__ = ("at_s", "deadline_s", "metadata", "state", "sub_updates")

    def __init__(self, state: InProgress, at_s: float, deadline_s: float) -> None:
        self.state = state
        #: Monotonic time of the latest coalesced call.
        self.at_s = at_s
        #: Monotonic time at which the window ends and this must be written.
        self.deadline_s = deadline_s
        self.metadata: JsonDict | None = None
        self.sub_updates: dict[str, SubOperationUpdate] | None = None

    def add_metadata(self, metadata: JsonDict | Any) -> None:
        if self.metadata is None:
            self.metadata = dict(metadata)
        else:
            self.metadata.update(metadata)

    def add_sub_updates(self, updates: Sequence[SubOperationUpdate]) -> None:
        if self.sub_updates is None:
            self.sub_updates = {}
        for update in updates:
            earlier = self.sub_updates.get(update.id)
            if earlier is not None:
                update = SubOperationUpdate(
                    id=update.id,
                    state=update.state or earlier.state,
                    percentage=update.percentage
                    if update.percentage is not None
                    else earlier.percentage,
                    metadata={**earlier.metadata, **update.metadata},
                )
            self.sub_updates[update.id] = update

    def sub_update_list(self) -> tuple[SubOperationUpdate, ...]:
        return tuple(self.sub_updates.values()) if self.sub_updates else ()


class WindowFlusher:
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
        add_listener = getattr(clock, "add_listener", None)
        if add_listener is not None:
            add_listener(self.run_due)
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

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
