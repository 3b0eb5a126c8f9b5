"""The writes of one ``apply_many`` transaction, held back and sent together.

A batch of the write-behind queue is often many updates of a few sessions.
Written one update at a time, each costs about six statements; without
pipelining (MariaDB, MySQL, SQLite) each is a round trip, so the database's
latency, not its work, bounds the rate. Held back to the end of the
transaction instead:

* each session row is written once, with its last values (the rows are
  locked; nobody sees the values in between);
* snapshots go in one ``executemany``, and a snapshot that a later update
  of the same batch thins out of the history is never sent; deletions of
  snapshots written by earlier transactions run first, in order;
* where statements are not pipelined, the events are numbered with one
  advance of the sequence and inserted in one ``executemany``.

What the store ends with is what writing each update in turn would leave.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.sql.expression import ClauseElement

from ...core.engine import EventDraft
from ...core.models import ProgressEvent, ProgressSession
from . import codec
from . import statements as q
from .dbapi import Executor

__all__ = ["Deferred", "Writes"]

#: How to read an update's logged events once they are numbered.
Logged = Callable[[], list[ProgressEvent]]


class Writes:
    """Where an update's session row and snapshots go: here, straight to the database."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def write_row(self, session_id: str, params: dict[str, Any]) -> None:
        self._ex.run(q.UPDATE_SESSION, params)

    def add_snapshot(self, session_id: str, index: int, row: dict[str, Any]) -> None:
        self._ex.run(q.INSERT_SNAPSHOT, row)

    def drop_snapshot(self, session_id: str, index: int) -> None:
        self._ex.run(q.DELETE_SNAPSHOT, {"b_id": session_id, "b_idx": index})

    def thin_snapshots(self, session_id: str, latest: int, stride: int) -> None:
        """Drop the snapshots before ``latest`` that are not multiples of ``stride``."""
        params = {"b_id": session_id, "b_latest": latest, "b_stride": stride}
        self._ex.run(q.THIN_SNAPSHOTS, params)

    def log_events(self, session: ProgressSession, drafts: Sequence[EventDraft]) -> Logged | None:
        """Hold the events back (how to read them later), or None: log them now."""
        return None


class Deferred(Writes):
    """What one transaction's updates will write, sent by :meth:`send` before the commit."""

    def __init__(self, ex: Executor, *, number_events: bool) -> None:
        super().__init__(ex)
        #: Session id -> the parameters of its row's last ``UPDATE_SESSION``.
        self._rows: dict[str, dict[str, Any]] = {}
        #: (session id, index) -> the snapshot row, in the order written.
        self._snapshots: dict[tuple[str, int], dict[str, Any]] = {}
        #: Deletions of snapshots that earlier transactions wrote, in order.
        self._deletions: list[tuple[ClauseElement, dict[str, Any]]] = []
        #: Number the events here (else each update numbers its own).
        self.number_events = number_events
        self._drafts: list[tuple[ProgressSession, Sequence[EventDraft]]] = []
        self._logged: list[list[ProgressEvent]] = []

    def write_row(self, session_id: str, params: dict[str, Any]) -> None:
        self._rows[session_id] = params

    def add_snapshot(self, session_id: str, index: int, row: dict[str, Any]) -> None:
        self._snapshots[(session_id, index)] = row

    def drop_snapshot(self, session_id: str, index: int) -> None:
        if self._snapshots.pop((session_id, index), None) is None:
            self._deletions.append((q.DELETE_SNAPSHOT, {"b_id": session_id, "b_idx": index}))

    def thin_snapshots(self, session_id: str, latest: int, stride: int) -> None:
        """On this batch's snapshots here, on earlier ones in the database."""
        for key in [
            (sid, index)
            for sid, index in self._snapshots
            if sid == session_id and index < latest and index % stride != 0
        ]:
            del self._snapshots[key]
        params = {"b_id": session_id, "b_latest": latest, "b_stride": stride}
        self._deletions.append((q.THIN_SNAPSHOTS, params))

    def log_events(self, session: ProgressSession, drafts: Sequence[EventDraft]) -> Logged | None:
        if not self.number_events or not drafts:
            return None
        slot = len(self._drafts)
        self._drafts.append((session, drafts))
        return lambda: self._logged[slot]

    def send(self) -> None:
        ex = self._ex
        for statement, params in self._deletions:
            ex.run(statement, params)
        ex.run_many(q.INSERT_SNAPSHOT, list(self._snapshots.values()))
        for params in self._rows.values():
            ex.run(q.UPDATE_SESSION, params)
        self._number_events(ex)

    def _number_events(self, ex: Executor) -> None:
        count = sum(len(drafts) for _, drafts in self._drafts)
        if not count:
            self._logged = [[] for _ in self._drafts]
            return
        ex.run(q.ADVANCE_SEQUENCE, {"v_count": count})
        row = ex.one(q.READ_SEQUENCE)
        assert row is not None
        seq = int(next(iter(row.values()))) - count
        rows = []
        for session, drafts in self._drafts:
            logged = []
            for draft in drafts:
                seq += 1
                rows.append(codec.event_row(seq, session, draft))
                logged.append(codec.logged_event(seq, session, draft))
            self._logged.append(logged)
        ex.run_many(q.INSERT_EVENTS, rows)
