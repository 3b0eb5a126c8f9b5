"""Purging: finished sessions and old events, deleted in short transactions.

Each batch is its own transaction, so a purge of thousands of rows never
holds locks long enough to hold up the writers of live sessions. A purged
session leaves the live counts and logs its expired event in the same
transaction that deletes it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from ...core.models import ProgressEvent
from ...core.states import SessionStatus
from ..base import ExpiredEvent
from . import codec
from . import statements as q
from .batch import log_events
from .executor import Executor
from .transactions import Transactor

__all__ = ["PURGE_EVENTS_BATCH", "PURGE_SESSIONS_BATCH", "Purger"]

#: Finished sessions deleted per transaction by ``purge_finished``.
PURGE_SESSIONS_BATCH = 100
#: Events deleted per transaction by ``purge_events``.
PURGE_EVENTS_BATCH = 1000


class Purger:
    """The purges of one store, through its transactor."""

    def __init__(self, tx: Transactor) -> None:
        self._tx = tx
        self._returning = tx.dialect.update_returning

    def purge_finished(
        self, ended_before: datetime, expired_event: ExpiredEvent, *, limit: int
    ) -> list[ProgressEvent]:
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
        self, ex: Executor, ended_before: datetime, expired_event: ExpiredEvent, size: int
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

    def purge_events(self, before: datetime, *, limit: int) -> int:
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
