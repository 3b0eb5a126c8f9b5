"""The writes of one ``apply_many`` transaction, held back and sent together.

A batch of the write-behind queue is often many updates of a few sessions.
Written one update at a time, each costs about six statements; without
pipelining (MariaDB, MySQL, SQLite) each is a round trip, so the database's
latency, not its work, bounds the rate. Held back to the end of the
transaction instead:

* each session row is written once, with its last values (the rows are
  locked; nobody sees the values in between); the sessions the batch
  creates are inserted in one ``executemany``, with their last values, and
  counted with one statement per status;
* snapshots go in one ``executemany``, and a snapshot that a later update
  of the same batch thins out of the history is never sent; deletions of
  snapshots written by earlier transactions run first, in order;
* the events are numbered with one advance of the sequence and inserted
  in one ``executemany`` (:func:`log_events`, which every write uses).

What the store ends with is what writing each update in turn would leave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.sql.expression import ClauseElement

from ...core.engine import EventDraft
from ...core.models import ProgressEvent, ProgressSession
from . import codec
from . import statements as q
from .executor import Executor, Pending

__all__ = ["Deferred", "Writes", "log_events"]

#: How to read an update's logged events once they are numbered.
Logged = Callable[[], list[ProgressEvent]]
#: Sessions and the drafts of the events each logs, in order.
Groups = Sequence[tuple[ProgressSession, Sequence[EventDraft]]]


def log_events(
    ex: Executor, groups: Groups, *, returning: bool, pipelined: bool
) -> Callable[[], list[list[ProgressEvent]]]:
    """Number and insert the events of ``groups``, in order: the last statements
    before the commit (the sequence row stays locked until it).

    Returns how to build each group's logged events once the sequence value
    is read (after the pipeline's sync, on PostgreSQL).
    """
    flat = [(session, draft) for session, drafts in groups for draft in drafts]
    count = len(flat)
    if not count:
        return lambda: [[] for _ in groups]
    if returning:
        advanced = ex.submit(q.ADVANCE_SEQUENCE_RETURNING, {"v_count": count})
    else:
        ex.run(q.ADVANCE_SEQUENCE, {"v_count": count})
        advanced = ex.submit(q.READ_SEQUENCE)
    if pipelined:
        # Numbered by the database from the advanced row: no round trip first.
        ex.run_many(
            q.INSERT_NUMBERED_EVENT,
            [
                codec.numbered_event_params(count - 1 - i, session, draft)
                for i, (session, draft) in enumerate(flat)
            ],
        )
    else:
        first = _last_seq(advanced) - count + 1
        ex.run_many(
            q.INSERT_EVENTS,
            [
                codec.event_row(seq, session, draft)
                for seq, (session, draft) in enumerate(flat, start=first)
            ],
        )
    built: list[list[ProgressEvent]] = []

    def logged() -> list[list[ProgressEvent]]:
        if not built:
            seq = _last_seq(advanced) - count
            for session, drafts in groups:
                events = []
                for draft in drafts:
                    seq += 1
                    events.append(codec.logged_event(seq, session, draft))
                built.append(events)
        return built

    return logged


def _last_seq(advanced: Pending) -> int:
    row = advanced.one()
    if row is None:
        raise LookupError("the sequence row is missing")
    return int(next(iter(row.values())))


class Writes:
    """Where an update's writes go: here, straight to the database."""

    def __init__(self, ex: Executor, *, returning: bool, pipelined: bool) -> None:
        self._ex = ex
        self._returning = returning
        self._pipelined = pipelined

    def write_row(self, session_id: str, values: dict[str, Any]) -> None:
        """Rewrite the session's row with ``values`` (``codec.session_values`` and the
        row's own columns)."""
        self._ex.run(q.UPDATE_SESSION, q.session_update_params(values))

    def insert_row(self, session_id: str, values: dict[str, Any]) -> None:
        self._ex.run(q.INSERT_SESSION, values)

    def count_created(self, status: str) -> None:
        self._ex.run(q.count_created(status), {"v_count": 1})

    def add_snapshot(self, session_id: str, index: int, row: dict[str, Any]) -> None:
        self._ex.run(q.INSERT_SNAPSHOT, row)

    def drop_snapshot(self, session_id: str, index: int) -> None:
        self._ex.run(q.DELETE_SNAPSHOT, {"b_id": session_id, "b_idx": index})

    def thin_snapshots(self, session_id: str, latest: int, stride: int) -> None:
        """Drop the snapshots before ``latest`` that are not multiples of ``stride``."""
        params = {"b_id": session_id, "b_latest": latest, "b_stride": stride}
        self._ex.run(q.THIN_SNAPSHOTS, params)

    def log_events(self, session: ProgressSession, drafts: Sequence[EventDraft]) -> Logged:
        """Log the events (or hold them back); returns how to read them after the commit."""
        numbered = self._number([(session, drafts)])
        return lambda: numbered()[0]

    def _number(self, groups: Groups) -> Callable[[], list[list[ProgressEvent]]]:
        return log_events(self._ex, groups, returning=self._returning, pipelined=self._pipelined)


class Deferred(Writes):
    """What one transaction's updates will write, sent by :meth:`send` before the commit."""

    def __init__(self, ex: Executor, *, returning: bool, pipelined: bool) -> None:
        super().__init__(ex, returning=returning, pipelined=pipelined)
        #: Session id -> its row's last values, for one ``UPDATE_SESSION``.
        self._rows: dict[str, dict[str, Any]] = {}
        #: Session id -> the row of a session this batch creates, with its last values.
        self._inserts: dict[str, dict[str, Any]] = {}
        #: Sessions created, by their status as created.
        self._created: Counter[str] = Counter()
        #: (session id, index) -> the snapshot row, in the order written.
        self._snapshots: dict[tuple[str, int], dict[str, Any]] = {}
        #: Deletions of snapshots that earlier transactions wrote, in order.
        self._deletions: list[tuple[ClauseElement, dict[str, Any]]] = []
        self._groups: list[tuple[ProgressSession, Sequence[EventDraft]]] = []
        self._numbered: Callable[[], list[list[ProgressEvent]]] | None = None

    def write_row(self, session_id: str, values: dict[str, Any]) -> None:
        if session_id in self._inserts:
            self._inserts[session_id] = values  # created in this batch: inserted as it ends
        else:
            self._rows[session_id] = values

    def insert_row(self, session_id: str, values: dict[str, Any]) -> None:
        self._inserts[session_id] = values

    def count_created(self, status: str) -> None:
        self._created[status] += 1

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

    def log_events(self, session: ProgressSession, drafts: Sequence[EventDraft]) -> Logged:
        slot = len(self._groups)
        self._groups.append((session, drafts))

        def logged() -> list[ProgressEvent]:
            assert self._numbered is not None, "read before the batch was sent"
            return self._numbered()[slot]

        return logged

    def send(self) -> None:
        ex = self._ex
        for statement, params in self._deletions:
            ex.run(statement, params)
        ex.run_many(q.INSERT_SESSION, list(self._inserts.values()))
        for status, count in self._created.items():
            ex.run(q.count_created(status), {"v_count": count})
        ex.run_many(q.INSERT_SNAPSHOT, list(self._snapshots.values()))
        for values in self._rows.values():
            ex.run(q.UPDATE_SESSION, q.session_update_params(values))
        self._numbered = self._number(self._groups)
