"""One session's run of writes inside an ``apply_many`` transaction.

A run is written in order on the locked session, each write on the session
as the one before left it: a mutation through :func:`~.change.write_change`,
a creation through :func:`~.change.write_creation` (or skipped, or refused,
if the session exists). The first refusal ends the run. A write whose
commit was in doubt (:mod:`.in_doubt`) and that happened is recognised and
not written again. Creations are checked against the live count of active
sessions, kept as the batch goes (:class:`Live`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ...core.errors import CapacityExceeded, InvalidProgress, ProgressError, SessionNotFound
from ...core.models import ProgressEvent, ProgressSession
from ...core.states import ACTIVE_STATUSES
from ..base import Applied, Creation, Write
from .batch import Deferred
from .change import Written, write_change, write_creation
from .executor import Executor, Pending
from .in_doubt import InDoubt, latest_events
from .schema import live_column
from .session_cache import CachedSession

__all__ = ["BatchRuns", "Live", "RunOutcome", "already_exists"]


def already_exists(session_id: str) -> InvalidProgress:
    return InvalidProgress(f"a session with id {session_id!r} already exists")


class Live:
    """The active sessions, as read under the counters row's lock and kept up to
    date by the writes of the transaction that holds it."""

    __slots__ = ("active",)

    def __init__(self, active: int) -> None:
        self.active = active

    @classmethod
    def of(cls, locked: Pending) -> Live:
        """From the counters row (``LOCK_COUNTERS``)."""
        totals = locked.one()
        assert totals is not None
        return cls(sum(int(totals[live_column(status)]) for status in ACTIVE_STATUSES))

    def check(self, max_active: int | None) -> None:
        """``CapacityExceeded`` if one more session would pass ``max_active``."""
        if max_active is not None and self.active >= max_active:
            raise CapacityExceeded(
                f"{self.active} sessions are active, the limit (max_concurrent_sessions) "
                f"is {max_active}"
            )

    def moved(self, old: ProgressSession, new: ProgressSession) -> None:
        was = old.state.status in ACTIVE_STATUSES
        self.active += (new.state.status in ACTIVE_STATUSES) - was


@dataclass(slots=True)
class RunOutcome:
    """What a run did, before the commit: its result and its writes."""

    result: Applied
    done: list[Written] = field(default_factory=list)
    #: The events of writes in doubt that had been committed, read back.
    replayed: list[ProgressEvent] = field(default_factory=list)
    #: No write changed the session: only the sessions row unchanged since.
    progress_only: bool = True
    #: What to remember if the commit itself is in doubt.
    doubt: InDoubt | None = None
    #: The session's earlier doubt still stands (some of its writes are to come).
    keep_doubt: bool = False


class BatchRuns:
    """Writes the runs of one batch through its :class:`~.batch.Deferred`."""

    def __init__(
        self,
        ex: Executor,
        writes: Deferred,
        live: Live | None,
        history_limit: int,
        max_active: int | None,
    ) -> None:
        self._ex = ex
        self.writes = writes
        #: Kept only when the batch creates sessions (it holds the counters row then).
        self._live = live
        self._history_limit = history_limit
        self._max_active = max_active

    def write_run(
        self,
        session_id: str,
        run: Sequence[Write],
        current: CachedSession | None,
        doubt: InDoubt | None,
    ) -> RunOutcome:
        """Write ``run`` on ``current`` (the locked session; None: it does not exist)."""
        outcome = RunOutcome(Applied(session_id))
        result = outcome.result
        for write in run:
            if doubt is not None and doubt.made(write) and self._happened(write, current, doubt):
                # Committed before the connection died: never written twice.
                assert current is not None
                result.applied += 1
                result.session = current.session
                if doubt.last(write):
                    if current.revision == doubt.revision:
                        outcome.replayed = latest_events(self._ex, session_id, doubt.events)
                    doubt = None
                else:
                    outcome.keep_doubt = not outcome.done
                continue
            try:
                written = self._write(session_id, write, current, result)
            except ProgressError as exc:
                result.error = exc
                break
            result.applied += 1
            if written is None:
                continue  # an existing session's creation, skipped
            outcome.done.append(written)
            outcome.progress_only = outcome.progress_only and written.progress_only
            outcome.keep_doubt = False
            current = written.cached
        if any(written.revised for written in outcome.done):
            outcome.doubt = InDoubt.of(run[: result.applied], outcome.done)
        return outcome

    @staticmethod
    def _happened(write: Write, current: CachedSession | None, doubt: InDoubt) -> bool:
        if current is None:
            return False
        return current.revision == doubt.revision or isinstance(write, Creation)

    def _write(
        self, session_id: str, write: Write, current: CachedSession | None, result: Applied
    ) -> Written | None:
        """One write; None for a creation skipped because the session exists."""
        if not isinstance(write, Creation):
            if current is None:
                raise SessionNotFound(session_id)
            written = write_change(self._ex, current, write, self._history_limit, self.writes)
            if self._live is not None:
                self._live.moved(current.session, written.cached.session)
            return written
        if write.session_id != session_id:
            raise InvalidProgress(
                f"a creation of {write.session_id!r} in the run of session {session_id!r}"
            )
        live = self._live
        assert live is not None, "a batch that creates holds the counters row"
        if current is not None:
            if not write.if_absent:
                raise already_exists(session_id)
            result.session = current.session
            result.active_sessions = live.active
            return None
        try:
            live.check(self._max_active)
        finally:
            result.active_sessions = live.active
        written = write_creation(self._ex, write.change, self.writes)
        live.active += written.cached.session.state.status in ACTIVE_STATUSES
        result.active_sessions = live.active
        return written
