"""The writes this process holds back from the store, per session.

Within ``update_interval_ms`` of a session's last write only its latest
update is kept (:class:`Pending`, see :mod:`.coalescing`); when the window
ends it is written (see :mod:`.flusher`). With write-behind (see
:mod:`.write_behind`) a session's :class:`Window` also holds the writes
queued for the writer (plain updates, and its creation and transitions),
in order, and counts those taken and not yet committed; its ``session`` is
the view they are checked against. :class:`Windows` keeps the queue's order
and count across sessions, and the estimate of active sessions that a
queued creation is checked against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.models import JsonDict, ProgressSession, SubOperationUpdate
from ..core.states import InProgress
from ..store.base import Creation, Mutation

__all__ = ["Pending", "Queued", "Transition", "Window", "Windows"]


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


@dataclass(frozen=True, slots=True)
class Transition:
    """A queued write other than a plain update or a creation (a transition, a
    sub-operation change, a mutation): what is written, and its twin without side
    effects (no ETA observed), which views are made with."""

    write: Mutation
    check: Mutation


#: A write queued for the writer: a plain update, a creation or a transition.
Queued = Pending | Creation | Transition


@dataclass(slots=True)
class Window:
    """What this process knows of one session: its coalescing window and write queue."""

    #: The status of ``session`` ("" while it is unknown).
    status: str
    last_write_s: float
    #: The session as last written, then as the queued writes leave it: what
    #: a write that does not wait on the store is checked against. None: not
    #: known here (only writes the store alone checks are queued).
    session: ProgressSession | None
    #: The latest coalesced update, written when the window ends.
    pending: Pending | None = None
    #: Writes queued for the background writer, oldest first.
    queued: list[Queued] | None = None
    #: Writes taken by the writer and not yet committed.
    in_flight: int = 0
    #: Those writes, oldest first, while they are in flight.
    taken: list[Queued] | None = None
    #: Creations and transitions (writes other than plain updates) among the
    #: queued and in-flight writes.
    transitions: int = 0
    #: Times its queued writes reached the store: a reader that saw them queued
    #: or in flight, then read the store, knows whether they landed in between.
    landings: int = 0

    def ahead(self) -> bool:
        """Whether ``session`` holds writes the store may not have yet."""
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
        #: Creations queued or in flight, not yet answered by the store.
        self.creations = 0
        #: The sessions active in the store, as last read by a write that created
        #: one (None: not read yet).
        self.store_active: int | None = None

    def active_estimate(self) -> int:
        """Active sessions once what is queued is written, as far as this process
        knows: exact in a process alone, an underestimate where others create
        sessions too (the store checks each creation again)."""
        return (self.store_active or 0) + self.creations

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
        window.last_write_s = now_s
        if not window.ahead():  # else the view is ahead of the store: keep it
            window.session = session
            window.status = session.state.status

    def unknown(self, session_id: str) -> Window:
        """The window of a session not known here, for writes the store alone checks."""
        window = self._windows.get(session_id)
        if window is None:
            window = self._windows[session_id] = Window("", float("-inf"), None)
        return window

    def forget(self, session_id: str) -> None:
        window = self._windows.pop(session_id, None)
        if window is not None and window.queued:
            self.queued_count -= len(window.queued)
            self.creations -= sum(isinstance(item, Creation) for item in window.queued)
            self._queued.pop(session_id, None)

    def with_pending(self) -> list[str]:
        return [session_id for session_id, window in self._windows.items() if window.pending]

    # -- the write-behind queue ----------------------------------------------------

    def queue(self, session_id: str, item: Queued, session: ProgressSession | None) -> None:
        """Queue ``item`` for the writer; ``session`` is the view once it is applied."""
        window = self._windows[session_id]
        window.session = session
        window.status = session.state.status if session is not None else ""
        if window.queued is None:
            window.queued = [item]
        else:
            window.queued.append(item)
        if not isinstance(item, Pending):
            window.transitions += 1
            self.creations += isinstance(item, Creation)
        self.queued_count += 1
        self._queued[session_id] = None

    @property
    def has_queued(self) -> bool:
        return bool(self._queued)

    def take(self, limit: int | None) -> list[tuple[str, list[Queued]]]:
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
            window.taken = items if window.taken is None else window.taken + items
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
                if window.in_flight <= 0:
                    window.taken = None
                window.transitions = _transitions(window.queued)
                window.landings += 1

    def take_session(self, session_id: str) -> list[Queued]:
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
        window.transitions = 0
        window.landings += 1
        return items

    def answered(self, creations: int, store_active: int | None) -> None:
        """The store has answered for ``creations`` queued creations; ``store_active``:
        the sessions active then, if it said."""
        self.creations -= creations
        if store_active is not None:
            self.store_active = store_active


def _transitions(items: list[Queued] | None) -> int:
    return sum(not isinstance(item, Pending) for item in items) if items else 0
