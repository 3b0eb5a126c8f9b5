"""Reading: sessions as the store has them, with what this process holds back applied.

A session read in the process that updates it shows its latest update at
once, although the update may still be coalescing or queued for the
writer: what this process holds back is read first, then the store, and the
one applied to the other. With creations or transitions queued, the
stored session has every write queued here applied to it, as the store
will apply them, so a session that other processes write too shows theirs
as well; a session created here shows at once, before the writer has
written it. Lists, counts and statistics come from the store alone.
"""

from __future__ import annotations

from collections.abc import Collection

from ..core.bounds import lookup_text
from ..core.errors import InvalidProgress, SessionNotFound
from ..core.models import ProgressSession, ProgressStats, detached
from ..core.states import SessionStatus
from ..store.base import SessionQuery, Store
from .held_updates import Pending, Queued
from .shared_state import SharedState

__all__ = ["READ_ATTEMPTS", "Reader", "session_query"]

#: Reads of a session whose writes queued here keep landing meanwhile, before
#: the last one is used as it is (a write that landed in between then shows
#: applied twice: by the store, and again here).
READ_ATTEMPTS = 3


class Reader:
    """Reads sessions for the tracker; see the module's docstring."""

    def __init__(self, store: Store, shared: SharedState) -> None:
        self._store = store
        self._shared = shared

    def get_session(self, session_id: str) -> ProgressSession:
        """The session as committed, with this process's held writes applied."""
        lookup_text(session_id, "session_id")
        windows, lock = self._shared.windows, self._shared.locks.state
        # What this process holds back is read first, then the store (without the
        # state lock): a write made before this call is in one or the other.
        for _ in range(READ_ATTEMPTS):
            with lock:
                window = windows.get(session_id)
                if window is not None and window.transitions:
                    held = [*(window.taken or ()), *(window.queued or ())]
                    pending = window.pending
                    landings = window.landings
                else:
                    held = None
                    local = window.session if window is not None and window.ahead() else None
                    pending = window.pending if window is not None else None
            session = self._store.get(session_id)
            if held is None:
                return self._with_updates(session_id, session, local, pending)
            with lock:
                current = windows.get(session_id)
                if current is window and current is not None and current.landings == landings:
                    # Or some of them would be applied twice, once by the store.
                    break
        assert held is not None
        return self._with_writes(session_id, session, held, pending)

    def _with_updates(
        self,
        session_id: str,
        session: ProgressSession | None,
        local: ProgressSession | None,
        pending: Pending | None,
    ) -> ProgressSession:
        """The stored session with the plain updates held back applied: the view
        they were queued on, unless the session moved on elsewhere (cancelled,
        paused: then they will be refused)."""
        if session is None:
            raise SessionNotFound(session_id)
        if local is None and pending is None:
            return session
        ahead = local is not None and session.state.status == SessionStatus.IN_PROGRESS
        base = local if ahead and local is not None else session
        view = base if pending is None else self._shared.calls.apply_pending(base, pending)
        if view is None:
            return session
        # The view is this process's own (and the store's cache's): the
        # reader gets a copy of its metadata.
        return detached(view.replace(history=())).replace(history=session.history)

    def _with_writes(
        self,
        session_id: str,
        session: ProgressSession | None,
        held: list[Queued],
        pending: Pending | None,
    ) -> ProgressSession:
        """The stored session (or the one created here, not written yet) with the
        writes queued since applied, each as the store will apply it: a session
        other processes write too shows their writes and this one's."""
        calls = self._shared.calls
        view = session.replace(history=()) if session is not None else None
        for item in held:
            view = calls.applied(view, item)
        if view is None:
            raise SessionNotFound(session_id)
        if pending is not None:
            view = calls.apply_pending(view, pending) or view
        history = session.history if session is not None else ()
        return detached(view).replace(history=history)

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
    for text, what in (
        (operation_id, "operation_id"),
        (parent_id, "parent_id"),
        (search, "search"),
    ):
        lookup_text(text, what)
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
