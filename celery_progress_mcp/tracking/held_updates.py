"""The updates this process holds back from the store, per session.

Within ``update_interval_ms`` of a session's last write only its latest
update is kept (:class:`Pending`, see :mod:`.coalescing`); when the window
ends it is written (see :mod:`.flusher`). With write-behind (see
:mod:`.write_behind`) a session's :class:`Window` also holds the updates
queued for the writer, and counts those taken and not yet committed;
:class:`Windows` keeps the queue's order and count across sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.models import JsonDict, ProgressSession, SubOperationUpdate
from ..core.states import InProgress

__all__ = ["Pending", "Window", "Windows"]


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

    Not locked: the tracker's state lock guards it (see :mod:`.locks`).
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
