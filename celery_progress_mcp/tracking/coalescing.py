"""Coalescing: within a session's window, only its latest plain update is kept.

A plain in-progress update made within ``update_interval_ms`` of the
session's last write is not written: it becomes (or replaces) the session's
:class:`~.held_updates.Pending` update, which the flusher writes when the
window ends. Sub-operation updates and metadata of the coalesced calls
merge. What the write path would refuse is not held back: the caller gets
the precise error from a write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.engine import Engine
from ..core.models import SubOperationUpdate
from ..core.states import InProgress, SessionStatus
from .flusher import WindowFlusher
from .held_updates import Pending, Window
from .shared_state import SharedState

__all__ = ["Coalescer", "own_copy"]


class Coalescer:
    """Holds a session's update back when its window is still open (the hot path)."""

    def __init__(self, shared: SharedState, flusher: WindowFlusher, window_s: float) -> None:
        # Each its own attribute: this is the hot path.
        self._engine = shared.engine
        self._clock = shared.clock
        self._windows = shared.windows
        self._lock = shared.locks.state
        self._flusher = flusher
        self._window_s = window_s

    def coalesce(
        self,
        session_id: str,
        state: InProgress,
        sub_updates: Sequence[SubOperationUpdate],
        metadata: Mapping[str, Any] | None,
    ) -> bool:
        """Keep the update pending if a write for this session happened within the window."""
        now_s = self._clock.monotonic()
        with self._lock:
            window = self._windows.get(session_id)
            if (
                window is None
                or window.status != SessionStatus.IN_PROGRESS
                or now_s - window.last_write_s >= self._window_s
            ):
                return False
            assert window.session is not None  # known: it is in progress
            self._engine.bounds.in_progress(state)  # held back, it must be as writable as written
            if sub_updates:
                checked = self._sub_updates_coalesce(window, sub_updates)
                if checked is None:
                    return False
                sub_updates = checked
            if metadata:
                metadata = self._engine.copy_metadata(metadata, "metadata")
                pending_metadata = window.pending.metadata if window.pending else None
                merged = {**window.session.metadata, **(pending_metadata or {}), **metadata}
                self._engine.check_metadata(merged, "the session's merged metadata")
            if window.pending is None:
                deadline_s = window.last_write_s + self._window_s
                window.pending = Pending(state, now_s, deadline_s)
                self._flusher.schedule(session_id, deadline_s)
            else:
                window.pending.state = state
                window.pending.at_s = now_s
            if sub_updates:
                window.pending.add_sub_updates(sub_updates)
            if metadata:
                window.pending.add_metadata(metadata)
        return True

    def _sub_updates_coalesce(
        self, window: Window, sub_updates: Sequence[SubOperationUpdate]
    ) -> list[SubOperationUpdate] | None:
        """These (state-less) sub-operation updates, checked, to wait for the window.

        None where an unknown or finished sub-operation is named: the write
        path raises the precise error. Bad metadata raises here, before
        anything changes; what is kept is a copy of the metadata as checked.
        """
        assert window.session is not None
        known = {sub.id: sub for sub in window.session.sub_operations}
        earlier = window.pending.sub_updates if window.pending is not None else None
        checked = []
        for update in sub_updates:
            sub = known.get(update.id)
            if sub is None or sub.state.is_terminal:
                return None
            if update.metadata:
                update = own_copy(self._engine, update)
                before = earlier.get(update.id) if earlier else None
                merged = {**sub.metadata, **(before.metadata if before else {}), **update.metadata}
                self._engine.check_metadata(merged, f"metadata of sub-operation {sub.id!r}")
            checked.append(update)
        return checked


def own_copy(engine: Engine, update: SubOperationUpdate) -> SubOperationUpdate:
    """``update`` with a checked copy of its metadata, shared with nobody."""
    if not update.metadata:
        return update
    what = f"metadata of sub-operation {update.id!r}"
    return update.replace(metadata=engine.copy_metadata(update.metadata, what))
