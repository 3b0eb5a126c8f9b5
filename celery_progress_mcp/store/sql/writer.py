"""The SQL store's writes: ``create``, ``apply`` and ``apply_many``.

* ``apply`` is one transaction: lock the session row, read it and its
  sub-operations (unless this process's cached copy is current), run the
  engine function and write what changed (:mod:`.change`), the events last.
  A mutation that raises rolls everything back.
* ``apply_many`` (group commit) does the same for many sessions' runs of
  writes in one transaction: their rows locked in id order, each write
  (a mutation, or a creation) run in turn on the session as the one before
  left it (:mod:`.runs`), every write held back and sent together
  (:class:`~.batch.Deferred`, one pipeline on PostgreSQL) with the commit.
* Event sequence numbers come from one counter row, incremented as the last
  step before the commit: its row lock is held until the commit, so numbers
  are handed out in commit order and a reader never sees N+1 before N.
* ``create`` locks the counters row first, and a batch that creates
  sessions locks it after its session rows: that row lock serialises
  creations everywhere, so neither the capacity check nor the check for an
  existing id can race.

A commit whose answer was lost is remembered (:mod:`.in_doubt`) so that its
replay is recognised and never applied twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import exc as sa_exc

from ...core.engine import Change
from ...core.errors import SessionNotFound
from ...core.models import ProgressEvent, ProgressSession
from ...core.states import TERMINAL_STATUSES
from ..base import Applied, Creation, Mutation, Write
from . import codec
from . import statements as q
from .batch import Deferred, Writes
from .change import write_change, write_creation
from .executor import Executor
from .in_doubt import InDoubt, confirm_creation, latest_events
from .runs import BatchRuns, Live, RunOutcome, already_exists
from .session_cache import CachedSession, SessionCache
from .transactions import CommitInDoubt, Transactor

__all__ = ["SessionWriter"]

logger = logging.getLogger(__name__)


class SessionWriter:
    """Every write of one store, through its transactor and its session cache.

    ``relaxed_commit``: a write that only moves progress commits without
    waiting for its WAL flush (PostgreSQL's ``synchronous_commit = off``).
    """

    def __init__(self, tx: Transactor, cache: SessionCache, *, relaxed_commit: bool) -> None:
        self._tx = tx
        self._cache = cache
        self._relaxed_commit = relaxed_commit
        self._returning = tx.dialect.update_returning
        #: Per session, the write whose commit was sent when the connection died.
        self._in_doubt: dict[str, InDoubt] = {}

    def create(self, change: Change, *, max_active: int) -> list[ProgressEvent]:
        session = change.session
        codec.check_ids(session)
        doubt = self._in_doubt.get(session.id)
        if doubt is not None and doubt.made(change):
            happened = self._tx.read_fast(lambda ex: confirm_creation(ex, doubt))
            if happened is not None:
                if doubt.last(change):
                    self._in_doubt.pop(session.id, None)
                    return happened
                return []  # the batch's later writes report its events

        attempted: list[InDoubt] = []

        def work(ex: Executor) -> tuple[list[ProgressEvent], CachedSession]:
            attempted.clear()
            with ex.pipeline():
                # First, so the row lock orders every creation (capacity, duplicate ids).
                locked = ex.submit(q.LOCK_COUNTERS)
                exists = ex.submit(q.SESSION_EXISTS, {"b_id": session.id})
                live = Live.of(locked)
                duplicate = exists.one() is not None
            if duplicate:
                raise already_exists(session.id)
            live.check(max_active)
            with ex.pipeline():
                written = write_creation(ex, change, self._writes(ex))
                attempted.append(InDoubt.of([change], [written]))
                ex.commit()
            return written.logged(), written.cached

        try:
            events, cached = self._tx.write(work)
        except sa_exc.IntegrityError as exc:
            raise already_exists(session.id) from exc
        except CommitInDoubt:
            if attempted:
                self._in_doubt[session.id] = attempted[0]
            raise
        self._in_doubt.pop(session.id, None)
        self._cache.put(cached)
        return events

    def apply(
        self, session_id: str, mutation: Mutation, *, history_limit: int
    ) -> tuple[ProgressSession, list[ProgressEvent]]:
        attempted: list[InDoubt] = []
        keep_doubt: list[InDoubt] = []

        def work(ex: Executor) -> tuple[ProgressSession, list[ProgressEvent], CachedSession]:
            attempted.clear()
            keep_doubt.clear()
            loaded = self._load(ex, session_id)
            doubt = self._in_doubt.get(session_id)
            if doubt is not None and doubt.revision == loaded.revision and doubt.made(mutation):
                # The commit this call was in doubt about happened: never apply it twice.
                logger.info(
                    "a write to %s whose commit was in doubt had been committed", session_id
                )
                last = mutation is doubt.calls[-1]
                if not last:
                    keep_doubt.append(doubt)  # the later calls of the batch are to come
                count = doubt.events if last else 0
                return doubt.session, latest_events(ex, session_id, count), loaded
            with ex.pipeline():
                written = write_change(ex, loaded, mutation, history_limit, self._writes(ex))
                if self._relaxed_commit and written.progress_only:
                    ex.command(q.RELAXED_COMMIT)
                if written.revised:
                    attempted.append(InDoubt.of([mutation], [written]))
                ex.commit()
            return written.cached.session, written.logged(), written.cached

        try:
            new, events, cached = self._tx.write(work)
        except CommitInDoubt:
            if attempted:
                self._in_doubt[session_id] = attempted[0]
            raise
        if not keep_doubt:
            self._in_doubt.pop(session_id, None)
        self._remember(cached)
        return new, events

    def apply_many(
        self,
        writes: Sequence[tuple[str, Sequence[Write]]],
        *,
        history_limit: int,
        max_active: int | None,
    ) -> list[Applied]:
        """Every run in one transaction: rows locked together, writes sent together.

        Sessions are locked in id order, the order every batch takes, so two
        processes' batches never deadlock. A batch that creates sessions then
        locks the counters row (as ``create`` does, so creations everywhere are
        ordered and capacity is checked against the count they leave), and
        looks again for the sessions to create that another process created
        meanwhile.
        """
        runs = sorted(((sid, list(ws)) for sid, ws in writes if ws), key=lambda run: run[0])
        creating = [sid for sid, run in runs if any(isinstance(w, Creation) for w in run)]
        attempted: dict[str, InDoubt] = {}

        def work(ex: Executor) -> list[RunOutcome]:
            attempted.clear()
            loaded = self._load_many(ex, [session_id for session_id, _ in runs])
            live = None
            if creating:
                live = Live.of(ex.submit(q.LOCK_COUNTERS))
                late = [session_id for session_id in creating if session_id not in loaded]
                if late and not self._tx.sqlite:  # SQLite: no other writer since BEGIN
                    loaded.update(self._load_many(ex, late))
            batch = BatchRuns(
                ex,
                Deferred(ex, returning=self._returning, pipelined=self._tx.pipelines),
                live,
                history_limit,
                max_active,
            )
            outcomes = []
            relaxed = self._relaxed_commit
            with ex.pipeline():
                for session_id, run in runs:
                    outcome = batch.write_run(
                        session_id, run, loaded.get(session_id), self._in_doubt.get(session_id)
                    )
                    relaxed = relaxed and outcome.progress_only
                    if outcome.doubt is not None:
                        attempted[session_id] = outcome.doubt
                    outcomes.append(outcome)
                batch.writes.send()
                if relaxed:
                    ex.command(q.RELAXED_COMMIT)
                ex.commit()
            return outcomes

        try:
            outcomes = self._tx.write(work)
        except CommitInDoubt:
            self._in_doubt.update(attempted)
            raise
        results = []
        for outcome in outcomes:
            result = outcome.result
            if not outcome.keep_doubt:
                self._in_doubt.pop(result.session_id, None)
            result.events.extend(outcome.replayed)
            for written in outcome.done:
                result.events.extend(written.logged())
            if outcome.done:
                result.session = outcome.done[-1].cached.session
                self._remember(outcome.done[-1].cached)
            results.append(result)
        return results

    def after_fork(self) -> None:
        """The parent's writes in doubt are the parent's to replay, not this process's."""
        self._in_doubt = {}

    def _remember(self, cached: CachedSession) -> None:
        if cached.session.state.status in TERMINAL_STATUSES:
            self._cache.discard(cached.session.id)
        else:
            self._cache.put(cached)

    def _load(self, ex: Executor, session_id: str) -> CachedSession:
        """Lock the session row; read the session unless the cached copy is current."""
        loaded = self._load_many(ex, [session_id]).get(session_id)
        if loaded is None:
            raise SessionNotFound(session_id)
        return loaded

    def _load_many(self, ex: Executor, session_ids: Sequence[str]) -> dict[str, CachedSession]:
        """Lock the sessions' rows in the order given and read those not cached.

        Sessions that do not exist are left out.
        """
        with ex.pipeline():
            heads = [
                (session_id, ex.submit(q.LOCK_SESSION, {"b_id": session_id}))
                for session_id in session_ids
            ]
            revisions = {}
            for session_id, head in heads:
                row = head.one()
                if row is None:
                    self._cache.discard(session_id)
                else:
                    revisions[session_id] = int(row["revision"])
        loaded: dict[str, CachedSession] = {}
        reads = []
        for session_id, revision in revisions.items():
            cached = self._cache.get(session_id, revision)
            if cached is not None:
                loaded[session_id] = cached
            else:
                reads.append(session_id)
        if reads:
            with ex.pipeline():
                pending = [
                    (
                        ex.submit(q.READ_SESSION, {"b_id": session_id}),
                        ex.submit(q.READ_SUB_OPERATIONS, {"b_id": session_id}),
                    )
                    for session_id in reads
                ]
                for read, subs in pending:
                    values = read.one()
                    assert values is not None  # the row is locked
                    decoded = [codec.decode_sub_operation(sub) for sub in subs.all()]
                    session = codec.decode_session(values, decoded)
                    loaded[session.id] = CachedSession(
                        session, int(values["revision"]), int(values["snapshot_count"])
                    )
        return loaded

    def _writes(self, ex: Executor) -> Writes:
        return Writes(ex, returning=self._returning, pipelined=self._tx.pipelines)
