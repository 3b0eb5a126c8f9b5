"""The Store port: where sessions, their history and the event log live.

A store runs an engine function inside its own transaction, so checks are
made against the committed session and a rejected request writes nothing.
It assigns event sequence numbers, which strictly increase across the whole
store, in commit order: a reader of the log never sees seq N+1 before N.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..core.engine import Change, EventDraft
from ..core.errors import CapacityExceeded, InvalidProgress, ProgressError, StoreUnavailable
from ..core.models import ProgressEvent, ProgressSession, ProgressStats

__all__ = ["Applied", "Creation", "ExpiredEvent", "Mutation", "SessionQuery", "Store", "Write"]

#: An engine call bound to its arguments: the committed session in, a change out.
Mutation = Callable[[ProgressSession], Change]


@dataclass(frozen=True, slots=True, eq=False)
class Creation:
    """A new session, as one write of an ``apply_many`` run: inserted as ``Store.create``
    inserts it (its sub-operations, snapshot and events), in the batch's transaction.

    If the session exists, with ``if_absent`` the creation is skipped (no event; it
    counts as applied and the run goes on with the existing session), without it
    the creation is refused with ``InvalidProgress``. Compared by identity, as a
    mutation is: a replayed write is recognised by being the same object.
    """

    change: Change
    if_absent: bool = False

    @property
    def session_id(self) -> str:
        return self.change.session.id


#: One write of an ``apply_many`` run.
Write = Mutation | Creation
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
    #: Where the run held a creation that was decided (written, skipped, or refused
    #: for capacity): the sessions active in the store then, if the store says.
    active_sessions: int | None = None


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
        self,
        writes: Sequence[tuple[str, Sequence[Write]]],
        *,
        history_limit: int,
        max_active: int | None = None,
    ) -> list[Applied]:
        """Apply runs of writes (mutations and creations), each session's in order:
        group commit.

        A store that can commits the whole batch in one transaction (each
        write still all or nothing). A write that raises a ``ProgressError``
        ends its session's run, what came before it kept; the other sessions
        go on. A creation is refused with ``CapacityExceeded`` when
        ``max_active`` sessions are active as it is written (None: no limit).
        ``StoreUnavailable`` means nothing was written. This base version
        applies the writes one by one, for stores that never raise
        ``StoreUnavailable``.
        """
        results = []
        for session_id, run in writes:
            outcome = Applied(session_id)
            for write in run:
                try:
                    if isinstance(write, Creation):
                        self._create_one(outcome, write, history_limit, max_active)
                    else:
                        session, events = self.apply(session_id, write, history_limit=history_limit)
                        outcome.session = session
                        outcome.events.extend(events)
                except StoreUnavailable:
                    raise
                except ProgressError as exc:
                    outcome.error = exc
                    break
                outcome.applied += 1
            results.append(outcome)
        return results

    def _create_one(
        self, outcome: Applied, creation: Creation, history_limit: int, max_active: int | None
    ) -> None:
        """``apply_many``'s creation, one call at a time (an existing session is
        looked up first, and again if the insertion is refused)."""
        session_id = creation.session_id
        if session_id != outcome.session_id:
            raise InvalidProgress(
                f"a creation of {session_id!r} in the run of session {outcome.session_id!r}"
            )
        try:
            if creation.if_absent and self._skip_existing(outcome, session_id):
                return
            events = self.create(
                creation.change,
                max_active=sys.maxsize if max_active is None else max_active,
                history_limit=history_limit,
            )
        except CapacityExceeded:
            outcome.active_sessions = self.stats().active_sessions
            raise
        except InvalidProgress:
            if creation.if_absent and self._skip_existing(outcome, session_id):
                return
            raise
        outcome.session = creation.change.session
        outcome.events.extend(events)
        outcome.active_sessions = self.stats().active_sessions

    def _skip_existing(self, outcome: Applied, session_id: str) -> bool:
        existing = self.get(session_id, with_history=False)
        if existing is None:
            return False
        outcome.session = existing
        return True

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

    def identity(self) -> str | None:
        """What names this store's data in every process that opens it, and is no
        secret (a database URL without its password): the key of the journal that
        keeps what a closing process could not write (``tracking.journal``).

        None (the default): nothing of this store outlives the process, so
        nothing is journalled for it.
        """
        return None

    def after_fork(self) -> None:
        """In a forked child, before any use: let go of the parent's connections
        without closing them (closing would tear down the parent's)."""

    def close(self) -> None:
        """Release resources; the base class holds none."""
