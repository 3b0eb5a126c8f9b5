"""The Store port: where sessions, their history and the event log live.

A store runs an engine function inside its own transaction, so checks are
made against the committed session and a rejected request writes nothing.
It assigns event sequence numbers, which strictly increase across the whole
store, in commit order: a reader of the log never sees seq N+1 before N.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from ..core.engine import Change, EventDraft
from ..core.models import ProgressEvent, ProgressSession, ProgressStats

__all__ = ["Mutation", "SessionQuery", "Store"]

#: An engine call bound to its arguments: the committed session in, a change out.
Mutation = Callable[[ProgressSession], Change]


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Filters and a page for ``Store.list_sessions``; newest first."""

    statuses: Collection[str] | None = None
    operation_id: str | None = None
    parent_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: Free text: a case-insensitive substring of the session id or the operation id.
    search: str | None = None
    limit: int = 50
    offset: int = 0


class Store:
    """Base class of stores. Every method is thread-safe."""

    #: True where calls wait on I/O; the async tracker then runs them in a thread.
    blocking: ClassVar[bool] = False

    def create(self, change: Change, *, max_active: int, history_limit: int) -> list[ProgressEvent]:
        """Insert a new session; ``CapacityExceeded`` if ``max_active`` are active,
        ``InvalidProgress`` if the id exists."""
        raise NotImplementedError

    def apply(
        self, session_id: str, mutation: Mutation, *, history_limit: int
    ) -> tuple[ProgressSession, list[ProgressEvent]]:
        """Run ``mutation`` on the committed session and commit its change atomically.

        Raises ``SessionNotFound``, or whatever the mutation raises (then
        nothing is written). Returns the new session (without history) and
        the events with their sequence numbers.
        """
        raise NotImplementedError

    def get(self, session_id: str, *, with_history: bool = True) -> ProgressSession | None:
        raise NotImplementedError

    def list_sessions(self, query: SessionQuery) -> list[ProgressSession]:
        """Sessions without history, newest first."""
        raise NotImplementedError

    def count_sessions(self, query: SessionQuery) -> int:
        raise NotImplementedError

    def stats(self) -> ProgressStats:
        raise NotImplementedError

    def events_since(
        self, since: int, *, session_id: str | None = None, limit: int = 1000
    ) -> list[ProgressEvent]:
        """Logged events with ``seq > since``, oldest first."""
        raise NotImplementedError

    def last_seq(self) -> int:
        raise NotImplementedError

    def stale_sessions(self, heartbeat_before: datetime, *, limit: int = 500) -> list[str]:
        """Ids of active sessions whose heartbeat is older than ``heartbeat_before``."""
        raise NotImplementedError

    def purge_finished(
        self,
        ended_before: datetime,
        expired_event: Callable[[ProgressSession], EventDraft | None],
        *,
        limit: int = 500,
    ) -> list[ProgressEvent]:
        """Delete up to ``limit`` finished sessions last updated before ``ended_before``,
        logging each one's expired event in the same transaction."""
        raise NotImplementedError

    def purge_events(self, before: datetime, *, limit: int = 5000) -> int:
        """Delete up to ``limit`` logged events older than ``before``; return how many."""
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        """What a health check reports: at least ``status`` (``"ok"`` or ``"unavailable"``)."""
        return {"status": "ok", "store": type(self).__name__}

    def close(self) -> None:
        """Release resources; the base class holds none."""
