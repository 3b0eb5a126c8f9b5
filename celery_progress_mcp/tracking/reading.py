"""Reading: sessions as the store has them, with what this process holds back applied.

A session read in the process that updates it shows its latest update at
once, although the update may still be coalescing or queued for the
writer: what this process holds back is read first, then the store, and the
one applied to the other. Lists, counts and statistics come from the store
alone.
"""

from __future__ import annotations

from collections.abc import Collection

from ..core.errors import InvalidProgress, SessionNotFound
from ..core.models import ProgressSession, ProgressStats, detached
from ..core.states import SessionStatus
from ..store.base import SessionQuery, Store
from .shared_state import SharedState

__all__ = ["Reader", "session_query"]


class Reader:
    """Reads sessions for the tracker; see the module's docstring."""

    def __init__(self, store: Store, shared: SharedState) -> None:
        self._store = store
        self._shared = shared

    def get_session(self, session_id: str) -> ProgressSession:
        """The session as committed, with this process's held updates applied."""
        # What this process holds back is read first, then the store (without
        # the state lock): an update made before this call is in one or the other.
        with self._shared.locks.state:
            window = self._shared.windows.get(session_id)
            local = window.session if window is not None and window.ahead() else None
            pending = window.pending if window is not None else None
        session = self._store.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        if local is None and pending is None:
            return session
        # Queued updates are ahead of the store, unless the session has moved
        # on elsewhere (cancelled, paused): then they will be refused.
        ahead = local is not None and session.state.status == SessionStatus.IN_PROGRESS
        base = local if ahead and local is not None else session
        view = base if pending is None else self._shared.calls.apply_pending(base, pending)
        if view is None:
            return session
        # The view is this process's own (and the store's cache's): the
        # reader gets a copy of its metadata.
        return detached(view.replace(history=())).replace(history=session.history)

    def list_sessions(self, query: SessionQuery) -> list[ProgressSession]:
        return self._store.list_sessions(query)

    def count_sessions(self, query: SessionQuery) -> int:
        return self._store.count_sessions(query)

    def stats(self) -> ProgressStats:
        return self._store.stats()


def session_query(
    status: str | Collection[str] | None,
    operation_id: str | None,
    parent_id: str | None,
    search: str | None,
    limit: int,
    offset: int,
) -> SessionQuery:
    """Check list filters and build the store's query; ``InvalidProgress`` if bad."""
    if limit < 0 or offset < 0:
        raise InvalidProgress("limit and offset must be non-negative")
    statuses = [status] if isinstance(status, str) else status
    if statuses is not None:
        unknown = set(statuses) - set(SessionStatus)
        if unknown:
            raise InvalidProgress(f"unknown session status(es): {sorted(unknown)}")
    return SessionQuery(
        statuses=statuses,
        operation_id=operation_id,
        parent_id=parent_id,
        search=search,
        limit=limit,
        offset=offset,
    )
