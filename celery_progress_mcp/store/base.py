"""The Store port: where sessions, their history and the event log live.

A store runs an engine function inside its own transaction, so checks are
made against the committed session and a rejected request writes nothing.
It assigns event sequence numbers, which strictly increase across the whole
store, in commit order: a reader of the log never sees seq N+1 before N.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..core.engine import Change, EventDraft
from ..core.errors import ProgressError, StoreUnavailable
from ..core.models import ProgressEvent, ProgressSession, ProgressStats

__all__ = ["Applied", "ExpiredEvent", "Mutation", "SessionQuery", "Store"]

#: An engine call bound to its arguments: the committed session in, a change out.
Mutation = Callable[[ProgressSession], Change]
#: The event a purged session logs (None: none), built from the session as it ends.
ExpiredEvent = Callable[[ProgressSession], EventDraft | None]


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


@dataclass(slots=True)
class Applied:
    """What ``Store.apply_many`` did with one session's run of mutations."""

    session_id: str
    #: The session after the last mutation applied (without history); None if none was.
    session: ProgressSession | None = None
    #: The events of the applied mutations, with their sequence numbers.
    events: list[ProgressEvent] = field(default_factory=list)
    #: How many of the run's mutations were applied: always a prefix of the run.
    applied: int = 0
    #: Why the rest were not: what the first refused mutation raised.
    error: ProgressError | None = None


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

    def apply_many(
        self, writes: Sequence[tuple[str, Sequence[Mutation]]], *, history_limit: int
    ) -> list[Applied]:
        """Apply runs of mutations, each session's in order: group commit.

        A store that can commits the whole batch in one transaction (each
        mutation still all or nothing). A mutation that raises a
        ``ProgressError`` ends its session's run, what came before it kept;
        the other sessions go on. ``StoreUnavailable`` means nothing was
        written. This base version applies the mutations one by one, for
        stores that never raise ``StoreUnavailable``.
        """
        results = []
        for session_id, mutations in writes:
            outcome = Applied(session_id)
            for mutation in mutations:
                try:
                    session, events = self.apply(session_id, mutation, history_limit=history_limit)
                except StoreUnavailable:
                    raise
                except ProgressError as exc:
                    outcome.error = exc
                    break
                outcome.session = session
                outcome.events.extend(events)
                outcome.applied += 1
            results.append(outcome)
        return results

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
        self, ended_before: datetime, expired_event: ExpiredEvent, *, limit: int = 500
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

    def after_fork(self) -> None:
        """In a forked child, before any use: let go of the parent's connections
        without closing them (closing would tear down the parent's)."""

    def close(self) -> None:
        """Release resources; the base class holds none."""
