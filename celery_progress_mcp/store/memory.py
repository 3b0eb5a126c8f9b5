"""An in-process store: the default for a bare tracker, and the model the SQL store follows."""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from ..core.engine import Change, EventDraft
from ..core.errors import CapacityExceeded, InvalidProgress, SessionNotFound
from ..core.history import append_snapshot
from ..core.models import (
    ProgressEvent,
    ProgressSession,
    ProgressSnapshot,
    ProgressStats,
    detached,
    detached_event,
)
from ..core.states import ACTIVE_STATUSES, Completed, SessionStatus
from .base import ExpiredEvent, Mutation, SessionQuery, Store

__all__ = ["DEFAULT_MAX_LOGGED_EVENTS", "MemoryStore"]

#: Events the memory store keeps for ``events_since``; older ones are dropped.
DEFAULT_MAX_LOGGED_EVENTS = 10_000


class MemoryStore(Store):
    def __init__(self, *, max_logged_events: int = DEFAULT_MAX_LOGGED_EVENTS) -> None:
        self._lock = threading.RLock()
        self._sessions: dict[str, ProgressSession] = {}
        self._history: dict[str, list[ProgressSnapshot]] = {}
        #: The events as published: read back (``events_since``) as copies.
        self._log: list[ProgressEvent] = []
        self._max_logged_events = max_logged_events
        self._seq = 0
        self._by_status: Counter[str] = Counter()
        self._created = 0
        self._ended: Counter[str] = Counter()
        self._completed_duration_s = 0.0

    # -- writing -----------------------------------------------------------

    def create(self, change: Change, *, max_active: int, history_limit: int) -> list[ProgressEvent]:
        session = change.session
        with self._lock:
            if session.id in self._sessions:
                raise InvalidProgress(f"a session with id {session.id!r} already exists")
            active = sum(self._by_status[status] for status in ACTIVE_STATUSES)
            if active >= max_active:
                raise CapacityExceeded(
                    f"{active} sessions are active, the limit (max_concurrent_sessions) "
                    f"is {max_active}"
                )
            self._sessions[session.id] = session
            self._history[session.id] = []
            self._by_status[session.state.status] += 1
            self._created += 1
            self._record(session.id, change, history_limit)
            return self._log_events(session, change.events)

    def apply(
        self, session_id: str, mutation: Mutation, *, history_limit: int
    ) -> tuple[ProgressSession, list[ProgressEvent]]:
        with self._lock:
            current = self._sessions.get(session_id)
            if current is None:
                raise SessionNotFound(session_id)
            change = mutation(current)
            new = change.session
            self._sessions[session_id] = new
            if new.state.status != current.state.status:
                self._count_transition(current, new)
            self._record(session_id, change, history_limit)
            return new, self._log_events(new, change.events)

    def _count_transition(self, old: ProgressSession, new: ProgressSession) -> None:
        self._by_status[old.state.status] -= 1
        self._by_status[new.state.status] += 1
        if new.state.status not in ACTIVE_STATUSES:
            self._ended[new.state.status] += 1
            if isinstance(new.state, Completed):
                self._completed_duration_s += new.state.duration_seconds

    def _record(self, session_id: str, change: Change, history_limit: int) -> None:
        if change.snapshot is None:
            return
        history = self._history[session_id]
        index = history[-1].index + 1 if history else 0
        # The snapshot is the change's own, not yet seen by anyone: stamping
        # its index in place saves a copy on every update.
        change.snapshot.__dict__["index"] = index
        append_snapshot(history, change.snapshot, history_limit)

    def _log_events(
        self, session: ProgressSession, drafts: tuple[EventDraft, ...]
    ) -> list[ProgressEvent]:
        events = []
        for draft in drafts:
            self._seq += 1
            events.append(
                ProgressEvent.trusted(
                    seq=self._seq,
                    session_id=session.id,
                    operation_id=session.operation_id,
                    event_type=draft.event_type,
                    timestamp=session.updated_at,
                    data=draft.data,
                )
            )
        self._log.extend(events)
        if len(self._log) > 2 * self._max_logged_events:
            del self._log[: len(self._log) - self._max_logged_events]
        return events

    # -- reading -------------------------------------------------------------

    def get(self, session_id: str, *, with_history: bool = True) -> ProgressSession | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if with_history:
                session = session.replace(history=tuple(self._history[session_id]))
            return detached(session)

    def _matching(self, query: SessionQuery) -> Iterator[ProgressSession]:
        with self._lock:
            sessions = list(self._sessions.values())
        statuses = set(query.statuses) if query.statuses is not None else None
        needle = query.search.casefold() if query.search else None
        return (
            s
            for s in sessions
            if (statuses is None or s.state.status in statuses)
            and (needle is None or needle in s.id.casefold() or needle in s.operation_id.casefold())
            and (query.operation_id is None or s.operation_id == query.operation_id)
            and (query.parent_id is None or s.parent_id == query.parent_id)
            and (query.created_after is None or s.created_at >= query.created_after)
            and (query.created_before is None or s.created_at < query.created_before)
        )

    def list_sessions(self, query: SessionQuery) -> list[ProgressSession]:
        # A page needs only the newest offset+limit: a bounded heap, not a full sort.
        newest = heapq.nlargest(
            query.offset + query.limit, self._matching(query), key=lambda s: (s.created_at, s.id)
        )
        return [detached(session) for session in newest[query.offset :]]

    def count_sessions(self, query: SessionQuery) -> int:
        return sum(1 for _ in self._matching(query))

    def stats(self) -> ProgressStats:
        with self._lock:
            completed = self._ended[SessionStatus.COMPLETED]
            return ProgressStats(
                active_sessions=sum(self._by_status[s] for s in ACTIVE_STATUSES),
                sessions_by_state={k: v for k, v in self._by_status.items() if v},
                avg_session_duration_seconds=(
                    self._completed_duration_s / completed if completed else 0.0
                ),
                total_completed=completed,
                total_failed=self._ended[SessionStatus.FAILED],
                total_cancelled=self._ended[SessionStatus.CANCELLED],
                total_created=self._created,
            )

    def events_since(
        self, since: int, *, session_id: str | None = None, limit: int = 1000
    ) -> list[ProgressEvent]:
        with self._lock:
            start = bisect_right(self._log, since, key=lambda event: event.seq)
            found = []
            for event in self._log[start:]:
                if session_id is None or event.session_id == session_id:
                    found.append(detached_event(event))
                    if len(found) >= limit:
                        break
            return found

    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    # -- housekeeping ----------------------------------------------------------

    def stale_sessions(self, heartbeat_before: datetime, *, limit: int = 500) -> list[str]:
        with self._lock:
            stale = [
                s.id
                for s in self._sessions.values()
                if s.state.status in ACTIVE_STATUSES
                and (s.heartbeat_at or s.updated_at) < heartbeat_before
            ]
        return stale[:limit]

    def purge_finished(
        self, ended_before: datetime, expired_event: ExpiredEvent, *, limit: int = 500
    ) -> list[ProgressEvent]:
        events: list[ProgressEvent] = []
        with self._lock:
            finished = [
                s
                for s in self._sessions.values()
                if s.state.status not in ACTIVE_STATUSES and s.updated_at < ended_before
            ][:limit]
            for session in finished:
                del self._sessions[session.id]
                del self._history[session.id]
                self._by_status[session.state.status] -= 1
                draft = expired_event(session)
                if draft is not None:
                    events.extend(self._log_events(session, (draft,)))
        return events

    def purge_events(self, before: datetime, *, limit: int = 5000) -> int:
        with self._lock:
            count = 0
            log = self._log
            while count < len(log) and count < limit and log[count].timestamp < before:
                count += 1
            del self._log[:count]
            return count

    # -- lifecycle ---------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: a new lock, since a thread of the parent may have held
        this one at the fork. The sessions stay: they are the child's copy."""
        self._lock = threading.RLock()
