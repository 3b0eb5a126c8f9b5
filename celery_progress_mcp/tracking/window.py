"""Coalescing windows: what this process knows of each session, and the one
thread that writes pending updates out.

Within ``update_interval_ms`` of a session's last write only its latest
update is kept (``Pending``); when the window ends the flusher writes it, so
the last update is never lost even if no further call comes. With
write-behind (see :mod:`.writer`) a window also holds the updates queued for
the writer; :class:`Windows` keeps the queue's order and count across
sessions. The same thread
runs the periodic cleanup. With a clock that can be advanced by hand
(``testing.FakeClock``) there is no thread: advancing the clock runs what has
come due, so tests never sleep.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.clock import Clock
from ..core.models import JsonDict, ProgressSession, SubOperationUpdate
from ..core.states import InProgress

__all__ = ["Pending", "Window", "WindowFlusher", "Windows"]

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


@dataclass(slots=True)
class Window:
    """What this process knows of one session: its coalescing window and write queue."""

    status: str
    last_write_s: float
    #: The session as last written, then as the queued updates leave it: what
    #: an update that does not wait on the store is checked against.
    session: ProgressSession
    #: The latest coalesced update, written when the window ends.
    pending: Pending | None = None
    #: Updates queued for the background writer, oldest first.
    queued: list[Pending] | None = None
    #: Updates taken by the writer and not yet committed.
    in_flight: int = 0

    def ahead(self) -> bool:
        """Whether ``session`` holds updates the store may not have yet."""
        return bool(self.queued) or self.in_flight > 0


class Windows:
    """Every session's window, and the write-behind queue across them, in order.

    Not locked: the tracker's state lock guards it.
    """

    def __init__(self) -> None:
        self._windows: dict[str, Window] = {}
        #: Sessions with queued updates, oldest first (an ordered set).
        self._queued: dict[str, None] = {}
        #: Updates queued across all sessions.
        self.queued_count = 0

    def get(self, session_id: str) -> Window | None:
        return self._windows.get(session_id)

    def created(self, session: ProgressSession) -> None:
        """A session this process created: its first update is never held back."""
        self._windows[session.id] = Window(session.state.status, float("-inf"), session)

    def written(self, session: ProgressSession, now_s: float) -> None:
        """The store now holds ``session`` (not ended), written at ``now_s``."""
        window = self._windows.get(session.id)
        if window is None:
            self._windows[session.id] = Window(session.state.status, now_s, session)
            return
        window.status = session.state.status
        window.last_write_s = now_s
        if not window.ahead():  # else the view is ahead of the store: keep it
            window.session = session

    def forget(self, session_id: str) -> None:
        window = self._windows.pop(session_id, None)
        if window is not None and window.queued:
            self.queued_count -= len(window.queued)
            self._queued.pop(session_id, None)

    def with_pending(self) -> list[str]:
        return [session_id for session_id, window in self._windows.items() if window.pending]

    # -- the write-behind queue ----------------------------------------------------

    def queue(self, session_id: str, item: Pending, session: ProgressSession) -> None:
        """Queue ``item`` for the writer; ``session`` is the view once it is applied."""
        window = self._windows[session_id]
        window.session = session
        if window.queued is None:
            window.queued = [item]
        else:
            window.queued.append(item)
        self.queued_count += 1
        self._queued[session_id] = None

    @property
    def has_queued(self) -> bool:
        return bool(self._queued)

    def take(self, limit: int | None) -> list[tuple[str, list[Pending]]]:
        """The queued updates of the longest-waiting sessions, up to about ``limit``
        (whole sessions), now counted in flight until :meth:`landed`."""
        runs = []
        taken = 0
        for session_id in list(self._queued):
            if limit is not None and taken >= limit:
                break
            del self._queued[session_id]
            window = self._windows.get(session_id)
            if window is None or not window.queued:
                continue
            items, window.queued = window.queued, None
            window.in_flight += len(items)
            self.queued_count -= len(items)
            taken += len(items)
            runs.append((session_id, items))
        return runs

    def landed(self, sizes: Mapping[str, int]) -> None:
        """The store has answered for updates :meth:`take` took."""
        for session_id, size in sizes.items():
            window = self._windows.get(session_id)
            if window is not None:
                window.in_flight -= size

    def take_session(self, session_id: str) -> list[Pending]:
        """One session's queued updates then its pending one, to write now, in order."""
        window = self._windows.get(session_id)
        if window is None or (window.pending is None and not window.queued):
            return []
        items = window.queued or []
        self.queued_count -= len(items)
        self._queued.pop(session_id, None)
        if window.pending is not None:
            items.append(window.pending)
        window.queued = window.pending = None
        return items


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
