"""The SQL store's reads: sessions, pages and counts, statistics, the event log.

A read of several statements that must agree (a session with its
sub-operations and history, a page with its sub-operations) runs in one
snapshot (REPEATABLE READ on servers). Statistics and counts by status
come from the counters row alone, which every transaction that changes a
status keeps, so they cost one row however many sessions there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ...core.models import (
    ProgressEvent,
    ProgressSession,
    ProgressSnapshot,
    ProgressStats,
    SubOperation,
)
from ...core.states import ACTIVE_STATUSES, SessionStatus
from ..base import SessionQuery
from . import codec, listing
from . import statements as q
from .schema import live_column
from .transactions import Transactor

__all__ = ["SessionReader"]


class SessionReader:
    """Every read of one store, through its transactor."""

    def __init__(self, tx: Transactor) -> None:
        self._tx = tx

    def get(self, session_id: str, *, with_history: bool = True) -> ProgressSession | None:
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
        params: dict[str, Any] = {"b_since": since, "b_limit": limit}
        if session_id is not None:
            params["b_session_id"] = session_id
        statement = q.events_after(by_session=session_id is not None)
        return self._tx.read_fast(
            lambda ex: [codec.decode_event(row) for row in ex.all(statement, params)]
        )

    def last_seq(self) -> int:
        return self._tx.read_fast(lambda ex: int(_scalar(ex.one(q.READ_SEQUENCE))))

    def stale_sessions(self, heartbeat_before: datetime, *, limit: int) -> list[str]:
        params = {"b_before": heartbeat_before, "b_limit": limit}
        return self._tx.read_fast(
            lambda ex: [str(row["id"]) for row in ex.all(q.STALE_SESSIONS, params)]
        )


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
