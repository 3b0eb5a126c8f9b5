"""``SqlStore``: the Store port on SQLAlchemy Core (SQLite, PostgreSQL, MySQL/MariaDB).

Semantics are those of :class:`~celery_progress_mcp.store.memory.MemoryStore`;
what differs is how they are kept across processes:

* ``apply`` is one transaction: lock the session row, read it and its
  sub-operations, run the engine function, write the session row, the
  sub-operation rows that changed, the snapshot (and thin the history with
  one DELETE), the lifetime counters on a status change and, last, the
  events. A mutation that raises rolls everything back.
* ``apply_many`` (group commit) does the same for many sessions' runs of
  updates in one transaction: their rows locked in id order, each mutation
  run in turn on the session as the one before left it, every write sent
  in one pipeline (PostgreSQL) with the commit.
* Event sequence numbers come from one counter row, incremented as the last
  step before the commit: its row lock is held until the commit, so numbers
  are handed out in commit order and a reader never sees N+1 before N.
* ``create`` increments the counters row first; that row lock serialises
  creations everywhere, so the capacity check cannot race.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from ...core.engine import Change, EventDraft
from ...core.errors import (
    CapacityExceeded,
    InvalidProgress,
    ProgressError,
    SessionNotFound,
    StoreUnavailable,
)
from ...core.history import stride_for
from ...core.models import (
    ProgressEvent,
    ProgressSession,
    ProgressSnapshot,
    ProgressStats,
    SubOperation,
)
from ...core.states import ACTIVE_STATUSES, TERMINAL_STATUSES, Completed, SessionStatus
from ..base import Applied, Mutation, SessionQuery, Store
from . import codec, listing
from . import statements as q
from .batch import Deferred, Writes, log_events
from .cache import CachedSession, SessionCache
from .checkpoint import WalCheckpointer
from .connect import engine_from_url, prepare_engine
from .dbapi import Executor
from .failures import Failure, classify
from .migrate import ensure_schema
from .schema import live_column
from .transactions import CommitInDoubt, Transactor

__all__ = ["PURGE_EVENTS_BATCH", "PURGE_SESSIONS_BATCH", "SqlStore"]

logger = logging.getLogger(__name__)

#: Finished sessions deleted per transaction by ``purge_finished``.
PURGE_SESSIONS_BATCH = 100
#: Events deleted per transaction by ``purge_events``.
PURGE_EVENTS_BATCH = 1000


class SqlStore(Store):
    """A durable store shared by every process that opens the same database.

    ``url_or_engine``: an SQLAlchemy URL (``sqlite:///progress.db``,
    ``postgresql://user@host/db``, ``mysql://user@host/db``; bare dialects get
    psycopg 3 and PyMySQL) or an Engine. The schema is created or upgraded
    on first use (if the database is down then, on the first call after it
    is back). Errors that mean the database cannot be reached become
    :class:`StoreUnavailable`; lost races are retried inside. An Engine of
    your own for MySQL/MariaDB should use ``isolation_level="READ COMMITTED"``,
    as the engines the store makes do.

    ``durable_progress``: on PostgreSQL, a write that only moves progress
    (no status or sub-operation state changes) commits without waiting for
    its WAL flush (``synchronous_commit = off`` for that transaction): it is
    visible at once and superseded by the next update, and a crash of the
    database server can lose at most the last fraction of a second of such
    updates, never a transition. True makes every write wait for the flush.
    (SQLite, with ``synchronous = NORMAL`` in WAL mode, keeps every commit
    across a crash of the process; a power cut can drop the latest ones.)
    """

    blocking: ClassVar[bool] = True

    def __init__(
        self,
        url_or_engine: str | URL | Engine,
        *,
        create_schema: bool = True,
        durable_progress: bool = False,
    ) -> None:
        if isinstance(url_or_engine, Engine):
            engine = url_or_engine
            self._owns_engine = False
            prepare_engine(engine)
        else:
            engine = engine_from_url(url_or_engine)
            self._owns_engine = True
        self.engine = engine
        self._tx = Transactor(engine)
        #: PostgreSQL: plain progress commits without waiting for the WAL flush.
        self._relaxed_commit = engine.dialect.name == "postgresql" and not durable_progress
        self._checkpointer = (
            WalCheckpointer(engine, self._tx.write_lock)
            if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
            else None
        )
        self._cache = SessionCache()
        #: Per session, the write whose commit was sent when the connection died.
        self._in_doubt: dict[str, _InDoubt] = {}
        self._returning = engine.dialect.update_returning
        self._schema_ready = False
        self._create_schema = create_schema
        if create_schema:
            # A database down at start-up is not an error: each call tries again first.
            with contextlib.suppress(StoreUnavailable):
                self._ensure_schema()

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        try:
            ensure_schema(self.engine)
        except sa_exc.SQLAlchemyError as exc:
            if classify(exc) is Failure.OTHER:
                raise
            logger.warning("progress store unavailable, schema not checked yet: %s", exc)
            raise StoreUnavailable(f"the progress store cannot be reached: {exc}") from exc
        self._schema_ready = True

    def _ready(self) -> None:
        if not self._schema_ready and self._create_schema:
            self._ensure_schema()
        if self._checkpointer is not None:
            self._checkpointer.ensure_running()

    # -- writing -----------------------------------------------------------

    def create(self, change: Change, *, max_active: int, history_limit: int) -> list[ProgressEvent]:
        session = change.session
        codec.check_ids(session)
        self._ready()
        doubt = self._in_doubt.get(session.id)
        if doubt is not None and doubt.made(change):
            happened = self._tx.read_fast(lambda ex: self._confirm_creation(ex, doubt))
            if happened is not None:
                self._in_doubt.pop(session.id, None)
                return happened

        attempted: list[_InDoubt] = []

        def work(ex: Executor) -> tuple[list[ProgressEvent], CachedSession]:
            attempted.clear()
            with ex.pipeline():
                # First, so the row lock orders every creation (capacity, duplicate ids).
                locked = ex.submit(q.LOCK_COUNTERS)
                exists = ex.submit(q.SESSION_EXISTS, {"b_id": session.id})
                totals = locked.one()
                duplicate = exists.one() is not None
            assert totals is not None
            active = sum(int(totals[live_column(status)]) for status in ACTIVE_STATUSES)
            if duplicate:
                raise InvalidProgress(f"a session with id {session.id!r} already exists")
            if active >= max_active:
                raise CapacityExceeded(
                    f"{active} sessions are active, the limit (max_concurrent_sessions) "
                    f"is {max_active}"
                )
            with ex.pipeline():
                ex.run(q.count_created(session.state.status))
                values = codec.session_values(session)
                values["snapshot_count"] = 1 if change.snapshot is not None else 0
                values["revision"] = revision = _new_revision()
                attempted.append(
                    _InDoubt(
                        (change,), revision, session, values["snapshot_count"], len(change.events)
                    )
                )
                ex.run(q.INSERT_SESSION, values)
                self._write_subs(ex, session.id, {}, session.sub_operations)
                if change.snapshot is not None:
                    snapshot = codec.snapshot_values(
                        session.id, change.snapshot, 0, _state_json(change, values)
                    )
                    ex.run(q.INSERT_SNAPSHOT, snapshot)
                logged = self._writes(ex).log_events(session, change.events)
                ex.commit()
            return logged(), CachedSession(session, revision, values["snapshot_count"])

        try:
            events, cached = self._tx.write(work)
        except sa_exc.IntegrityError as exc:
            raise InvalidProgress(f"a session with id {session.id!r} already exists") from exc
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
        self._ready()

        attempted: list[_InDoubt] = []
        keep_doubt: list[_InDoubt] = []

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
                return doubt.session, self._latest_events(ex, session_id, count), loaded
            with ex.pipeline():
                written = self._write_change(ex, loaded, mutation, history_limit)
                if self._relaxed_commit and written.progress_only:
                    ex.command(q.RELAXED_COMMIT)
                if written.revised:
                    attempted.append(_InDoubt.of([mutation], [written]))
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
        self, writes: Sequence[tuple[str, Sequence[Mutation]]], *, history_limit: int
    ) -> list[Applied]:
        """Every run in one transaction: rows locked together, writes sent together.

        Sessions are locked in id order, the order every batch takes, so two
        processes' batches never deadlock.
        """
        self._ready()
        runs = sorted(((sid, list(ms)) for sid, ms in writes if ms), key=lambda run: run[0])
        attempted: dict[str, _InDoubt] = {}

        def work(ex: Executor) -> list[tuple[Applied, list[_Written]]]:
            attempted.clear()
            loaded = self._load_many(ex, [session_id for session_id, _ in runs])
            outcomes = []
            relaxed = self._relaxed_commit
            deferred = Deferred(ex, returning=self._returning, pipelined=self._tx.pipelines)
            with ex.pipeline():
                for session_id, mutations in runs:
                    outcome = Applied(session_id)
                    done: list[_Written] = []
                    current = loaded.get(session_id)
                    if current is None:
                        outcome.error = SessionNotFound(session_id)
                        mutations = []
                    for mutation in mutations:
                        assert current is not None
                        try:
                            written = self._write_change(
                                ex, current, mutation, history_limit, deferred
                            )
                        except ProgressError as exc:
                            outcome.error = exc
                            break
                        done.append(written)
                        current = written.cached
                        relaxed = relaxed and written.progress_only
                    outcome.applied = len(done)
                    if any(written.revised for written in done):
                        attempted[session_id] = _InDoubt.of(mutations[: len(done)], done)
                    outcomes.append((outcome, done))
                deferred.send()
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
        for outcome, done in outcomes:
            self._in_doubt.pop(outcome.session_id, None)
            for written in done:
                outcome.events.extend(written.logged())
            if done:
                outcome.session = done[-1].cached.session
                self._remember(done[-1].cached)
            results.append(outcome)
        return results

    def _write_change(
        self,
        ex: Executor,
        loaded: CachedSession,
        mutation: Mutation,
        history_limit: int,
        writes: Writes | None = None,
    ) -> _Written:
        """Run ``mutation`` on the locked session and send its writes (no commit),
        or hold them back in ``writes`` (a batch's :class:`Deferred`).

        The mutation runs first: if it raises, nothing has been sent.
        """
        writes = writes or self._writes(ex)
        current = loaded.session
        change = mutation(current)
        new = change.session
        if new.sub_operations is not current.sub_operations:
            codec.check_ids(new)  # the ids of a session never change; its subs may
        snapshot_count = loaded.snapshot_count
        revision = loaded.revision
        values = None
        if change.snapshot is not None or _row_changed(current, new):
            values = codec.session_values(new)
            values["snapshot_count"] = snapshot_count + (change.snapshot is not None)
            values["revision"] = revision = _new_revision()
            writes.write_row(current.id, q.session_update_params(values))
        if change.snapshot is not None:
            self._record_snapshot(
                writes,
                current.id,
                change.snapshot,
                snapshot_count,
                history_limit,
                _state_json(change, values),
            )
            snapshot_count += 1
        self._write_subs(
            ex,
            current.id,
            {sub.id: (i, sub) for i, sub in enumerate(current.sub_operations)},
            new.sub_operations,
        )
        if new.state.status != current.state.status:
            self._count_transition(ex, current, new)
        return _Written(
            CachedSession(new, revision, snapshot_count),
            writes.log_events(new, change.events),
            revised=values is not None,
            progress_only=_progress_only(current, new),
            events=len(change.events),
        )

    def _remember(self, cached: CachedSession) -> None:
        if cached.session.state.status in TERMINAL_STATUSES:
            self._cache.discard(cached.session.id)
        else:
            self._cache.put(cached)

    def _confirm_creation(self, ex: Executor, doubt: _InDoubt) -> list[ProgressEvent] | None:
        """The events of a creation in doubt if it happened, else None."""
        head = ex.one(q.READ_SESSION, {"b_id": doubt.session.id})
        if head is None or int(head["revision"]) != doubt.revision:
            return None
        return self._latest_events(ex, doubt.session.id, doubt.events)

    def _latest_events(self, ex: Executor, session_id: str, count: int) -> list[ProgressEvent]:
        if not count:
            return []
        rows = ex.all(q.LATEST_SESSION_EVENTS, {"b_session_id": session_id, "b_limit": count})
        return [codec.decode_event(row) for row in reversed(rows)]

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

    def _write_subs(
        self,
        ex: Executor,
        session_id: str,
        before: dict[str, tuple[int, SubOperation]],
        after: Sequence[SubOperation],
    ) -> None:
        """Insert new sub-operations and update changed ones; untouched rows stay untouched."""
        inserts = []
        updates = []
        for position, sub in enumerate(after):
            previous = before.get(sub.id)
            if previous is None:
                inserts.append(codec.sub_operation_values(session_id, position, sub))
            elif previous != (position, sub):
                values = codec.sub_operation_values(session_id, position, sub)
                updates.append(q.sub_update_params(values))
        ex.run_many(q.INSERT_SUB_OPERATIONS, inserts)
        ex.run_many(q.UPDATE_SUB_OPERATION, updates)
        if len(before) > len(after) - len(inserts):
            # The engine never removes sub-operations; a mutation that did is honoured.
            kept = {sub.id for sub in after}
            ex.run_many(
                q.DELETE_SUB_OPERATION,
                [{"b_session_id": session_id, "b_id": sub_id} for sub_id in set(before) - kept],
            )

    def _record_snapshot(
        self,
        writes: Writes,
        session_id: str,
        snapshot: ProgressSnapshot,
        index: int,
        history_limit: int,
        state_json: str | None,
    ) -> None:
        """Append snapshot ``index`` and thin the history by the rule of ``core.history``."""
        writes.add_snapshot(
            session_id, index, codec.snapshot_values(session_id, snapshot, index, state_json)
        )
        if index == 0:
            return
        stride = stride_for(index, history_limit)
        previous = index - 1
        if stride == stride_for(previous, history_limit):
            # Same stride: only the previous latest can have stopped being kept.
            if previous % stride != 0:
                writes.drop_snapshot(session_id, previous)
            return
        writes.thin_snapshots(session_id, index, stride)

    def _count_transition(self, ex: Executor, old: ProgressSession, new: ProgressSession) -> None:
        """Move the session between the live counts (and count an ending)."""
        statement = q.count_moved(old.state.status, new.state.status)
        if isinstance(new.state, Completed):
            ex.run(statement, {"v_duration_s": new.state.duration_seconds})
        else:
            ex.run(statement)

    def _writes(self, ex: Executor) -> Writes:
        return Writes(ex, returning=self._returning, pipelined=self._tx.pipelines)

    # -- reading -------------------------------------------------------------

    def get(self, session_id: str, *, with_history: bool = True) -> ProgressSession | None:
        self._ready()

        def work(conn: Connection) -> ProgressSession | None:
            params = {"b_id": session_id}
            row = conn.execute(q.READ_SESSION, params).first()
            if row is None:
                return None
            subs = [
                codec.decode_sub_operation(sub._mapping)
                for sub in conn.execute(q.READ_SUB_OPERATIONS, params)
            ]
            history: tuple[ProgressSnapshot, ...] = ()
            if with_history:
                history = tuple(
                    codec.decode_snapshot(snap.idx, snap.data)
                    for snap in conn.execute(q.READ_HISTORY, params)
                )
            return codec.decode_session(row._mapping, subs, history)

        return self._tx.read(work, snapshot=True)

    def list_sessions(self, query: SessionQuery) -> list[ProgressSession]:
        self._ready()
        if query.limit <= 0:
            return []
        page, params = listing.page_statement(query)

        def work(conn: Connection) -> list[ProgressSession]:
            rows = conn.execute(page, params).all()
            subs: dict[str, list[SubOperation]] = {}
            if rows:
                ids = [row.id for row in rows]
                for sub in conn.execute(q.READ_SUB_OPERATIONS_OF, {"b_ids": ids}):
                    subs.setdefault(sub.session_id, []).append(
                        codec.decode_sub_operation(sub._mapping)
                    )
            return [codec.decode_session(row._mapping, subs.get(row.id, ())) for row in rows]

        return self._tx.read(work, snapshot=True)

    def count_sessions(self, query: SessionQuery) -> int:
        self._ready()
        if _by_status_only(query):
            # What the live counts hold already: one row, however many sessions.
            by_status = self._live_counts()
            statuses = set(SessionStatus) if query.statuses is None else set(query.statuses)
            return sum(count for status, count in by_status.items() if status in statuses)
        counting, params = listing.count_statement(query)
        return self._tx.read(lambda conn: int(conn.execute(counting, params).scalar_one()))

    def _live_counts(self) -> dict[str, int]:
        totals = self._tx.read_fast(lambda ex: ex.one(q.READ_COUNTERS))
        assert totals is not None
        return {str(status): int(totals[live_column(status)]) for status in SessionStatus}

    def stats(self) -> ProgressStats:
        """From the counters row alone: kept by every transaction that changes a status."""
        self._ready()
        totals = self._tx.read_fast(lambda ex: ex.one(q.READ_COUNTERS))
        assert totals is not None
        by_status = {
            str(status): int(totals[live_column(status)])
            for status in SessionStatus
            if totals[live_column(status)]
        }
        completed = int(totals["completed"])
        return ProgressStats(
            active_sessions=sum(by_status.get(status, 0) for status in ACTIVE_STATUSES),
            sessions_by_state=by_status,
            avg_session_duration_seconds=(
                float(totals["completed_duration_s"]) / completed if completed else 0.0
            ),
            total_completed=completed,
            total_failed=int(totals["failed"]),
            total_cancelled=int(totals["cancelled"]),
            total_created=int(totals["created"]),
        )

    def events_since(
        self, since: int, *, session_id: str | None = None, limit: int = 1000
    ) -> list[ProgressEvent]:
        self._ready()
        params: dict[str, Any] = {"b_since": since, "b_limit": limit}
        if session_id is not None:
            params["b_session_id"] = session_id
        statement = q.events_after(by_session=session_id is not None)
        return self._tx.read_fast(
            lambda ex: [codec.decode_event(row) for row in ex.all(statement, params)]
        )

    def last_seq(self) -> int:
        self._ready()
        return self._tx.read_fast(lambda ex: int(_scalar(ex.one(q.READ_SEQUENCE))))

    # -- housekeeping ----------------------------------------------------------

    def stale_sessions(self, heartbeat_before: datetime, *, limit: int = 500) -> list[str]:
        self._ready()
        params = {"b_before": heartbeat_before, "b_limit": limit}
        return self._tx.read_fast(
            lambda ex: [str(row["id"]) for row in ex.all(q.STALE_SESSIONS, params)]
        )

    def purge_finished(
        self,
        ended_before: datetime,
        expired_event: Callable[[ProgressSession], EventDraft | None],
        *,
        limit: int = 500,
    ) -> list[ProgressEvent]:
        self._ready()
        logged: list[ProgressEvent] = []
        remaining = limit
        while remaining > 0:
            size = min(remaining, PURGE_SESSIONS_BATCH)

            def work(ex: Executor, size: int = size) -> tuple[int, list[ProgressEvent]]:
                return self._purge_batch(ex, ended_before, expired_event, size)

            purged, batch_events = self._tx.write(work)
            logged.extend(batch_events)
            remaining -= purged
            if purged < size:
                break
        return logged

    def _purge_batch(
        self,
        ex: Executor,
        ended_before: datetime,
        expired_event: Callable[[ProgressSession], EventDraft | None],
        size: int,
    ) -> tuple[int, list[ProgressEvent]]:
        rows = ex.all(q.FINISHED_BEFORE, {"b_before": ended_before, "b_limit": size})
        if not rows:
            return 0, []
        keys = [{"b_id": row["id"]} for row in rows]
        with ex.pipeline():
            pending = [ex.submit(q.READ_SUB_OPERATIONS, key) for key in keys]
            subs = [[codec.decode_sub_operation(sub) for sub in p.all()] for p in pending]
        purged = Counter(str(row["status"]) for row in rows)
        with ex.pipeline():
            for statement in q.DELETE_SESSION:
                ex.run_many(statement, keys)
            ex.run(q.COUNT_PURGED, {f"v_{status}": purged[status] for status in SessionStatus})
            expired = []
            for row, session_subs in zip(rows, subs, strict=True):
                session = codec.decode_session(row, session_subs)
                draft = expired_event(session)
                if draft is not None:
                    expired.append((session, (draft,)))
            logged = log_events(
                ex, expired, returning=self._returning, pipelined=self._tx.pipelines
            )
            ex.commit()
        return len(rows), [event for events in logged() for event in events]

    def purge_events(self, before: datetime, *, limit: int = 5000) -> int:
        self._ready()
        total = 0
        while total < limit:
            size = min(limit - total, PURGE_EVENTS_BATCH)

            def work(ex: Executor, size: int = size) -> int:
                old = ex.all(q.OLD_EVENTS, {"b_before": before, "b_limit": size})
                if old:
                    ex.run(q.DELETE_OLD_EVENTS, {"b_last": old[-1]["seq"], "b_before": before})
                return len(old)

            deleted = self._tx.write(work)
            total += deleted
            if deleted < size:
                break
        return total

    # -- lifecycle ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "store": type(self).__name__,
            "dialect": self.engine.dialect.name,
            "url": self.engine.url.render_as_string(hide_password=True),
        }
        try:
            self._ready()
            report["last_seq"] = self.last_seq()
        except StoreUnavailable as exc:
            report.update(status="unavailable", error=str(exc))
            return report
        report["status"] = "ok"
        return report

    def after_fork(self) -> None:
        self.engine.dispose(close=False)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._tx.close()
        if self._owns_engine:
            self.engine.dispose()


@dataclass(frozen=True, slots=True)
class _InDoubt:
    """Writes whose commit may have happened: replayed, each is recognised by being
    one of ``calls`` (the same Mutation or Change objects) while the row still holds
    ``revision`` (the token the last of them wrote)."""

    calls: tuple[object, ...]
    revision: int
    session: ProgressSession
    snapshot_count: int
    #: Events the calls logged, all told.
    events: int

    def made(self, call: object) -> bool:
        return any(made is call for made in self.calls)

    @classmethod
    def of(cls, calls: Sequence[object], written: Sequence[_Written]) -> _InDoubt:
        last = written[-1].cached
        return cls(
            tuple(calls),
            last.revision,
            last.session,
            last.snapshot_count,
            sum(w.events for w in written),
        )


@dataclass(frozen=True, slots=True)
class _Written:
    """One mutation's writes, sent and not yet committed."""

    cached: CachedSession
    #: The logged events, once the commit has been read back.
    logged: Callable[[], list[ProgressEvent]]
    #: The session row was rewritten (with a new revision).
    revised: bool
    progress_only: bool
    events: int


def _new_revision() -> int:
    return random.getrandbits(62)


def _state_json(change: Change, session_row: dict[str, Any] | None) -> str | None:
    """The session row's state JSON, when the snapshot records that same state."""
    if session_row is None or change.snapshot is None:
        return None
    return str(session_row["state"]) if change.snapshot.state is change.session.state else None


def _scalar(row: Mapping[str, Any] | None) -> Any:
    if row is None:
        raise LookupError("expected a row")
    return next(iter(row.values()))


def _by_status_only(query: SessionQuery) -> bool:
    return (
        query.operation_id is None
        and query.parent_id is None
        and query.created_after is None
        and query.created_before is None
        and not query.search
    )


def _progress_only(old: ProgressSession, new: ProgressSession) -> bool:
    """No status and no sub-operation state changed: the next update supersedes this one."""
    if old.state.status != new.state.status or len(old.sub_operations) != len(new.sub_operations):
        return False
    return all(
        before.id == after.id and before.state == after.state
        for before, after in zip(old.sub_operations, new.sub_operations, strict=True)
    )


def _row_changed(old: ProgressSession, new: ProgressSession) -> bool:
    return (
        old.state != new.state
        or old.metadata != new.metadata
        or old.updated_at != new.updated_at
        or old.heartbeat_at != new.heartbeat_at
        or old.sub_operations != new.sub_operations
    )
