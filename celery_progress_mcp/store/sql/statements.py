"""The store's statements, built once.

A statement object built per call costs more to construct and to key for
SQLAlchemy's compiled cache than the database takes to run it; built once
with bound parameters, its cache key is computed once and every call goes
straight to the compiled form. Parameters named ``b_*`` select rows,
``v_*`` are values written.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Double,
    Insert,
    Integer,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)

from ...core.states import ACTIVE_STATUSES, TERMINAL_STATUSES, SessionStatus
from .schema import (
    COUNTERS_ROW_ID,
    SEQUENCE_ROW_ID,
    counters,
    events,
    live_column,
    sequence,
    sessions,
    snapshots,
    sub_operations,
)

__all__ = [
    "ACTIVE",
    "ADVANCE_SEQUENCE",
    "ADVANCE_SEQUENCE_RETURNING",
    "COUNT_BY_STATUS",
    "COUNT_PURGED",
    "DELETE_OLD_EVENTS",
    "DELETE_SESSION",
    "DELETE_SNAPSHOT",
    "DELETE_SUB_OPERATION",
    "FINISHED_BEFORE",
    "INSERT_EVENTS",
    "INSERT_NUMBERED_EVENT",
    "INSERT_SESSION",
    "INSERT_SNAPSHOT",
    "INSERT_SUB_OPERATIONS",
    "LATEST_SESSION_EVENTS",
    "LOCK_COUNTERS",
    "LOCK_SESSION",
    "OLD_EVENTS",
    "READ_COUNTERS",
    "READ_HISTORY",
    "READ_SEQUENCE",
    "READ_SESSION",
    "READ_SUB_OPERATIONS",
    "READ_SUB_OPERATIONS_OF",
    "RELAXED_COMMIT",
    "SESSION_COLUMNS",
    "SESSION_EXISTS",
    "STALE_SESSIONS",
    "TERMINAL",
    "THIN_SNAPSHOTS",
    "UPDATE_SESSION",
    "UPDATE_SUB_OPERATION",
    "count_created",
    "count_moved",
    "events_after",
    "session_update_params",
    "sub_update_params",
]

#: PostgreSQL: this transaction's commit need not wait for its WAL flush.
RELAXED_COMMIT = "SET LOCAL synchronous_commit TO OFF"

ACTIVE = sorted(str(status) for status in ACTIVE_STATUSES)
TERMINAL = sorted(str(status) for status in TERMINAL_STATUSES)


def _one_of(statuses: list[str]) -> list[ColumnElement[Any]]:
    """Status constants written into the SQL, so statements have no list parameters."""
    return [literal_column(f"'{status}'") for status in statuses]


_IS_ACTIVE = sessions.c.status.in_(_one_of(ACTIVE))
_IS_TERMINAL = sessions.c.status.in_(_one_of(TERMINAL))

SESSION_COLUMNS = (
    sessions.c.id,
    sessions.c.operation_id,
    sessions.c.parent_id,
    sessions.c.state,
    sessions.c.metadata,
    sessions.c.created_at,
    sessions.c.updated_at,
    sessions.c.heartbeat_at,
)

# -- sessions ------------------------------------------------------------------

READ_SESSION: Select[Any] = select(
    *SESSION_COLUMNS, sessions.c.snapshot_count, sessions.c.revision
).where(sessions.c.id == bindparam("b_id"))
#: The row lock every writer of the session queues on (the clause is dropped on
#: SQLite, where BEGIN IMMEDIATE already serialises writers). It reads only
#: what tells whether a cached copy of the session is current.
LOCK_SESSION: Select[Any] = (
    select(sessions.c.snapshot_count, sessions.c.revision)
    .where(sessions.c.id == bindparam("b_id"))
    .with_for_update()
)
SESSION_EXISTS: Select[Any] = select(sessions.c.id).where(sessions.c.id == bindparam("b_id"))
INSERT_SESSION: Insert = insert(sessions)
_SESSION_WRITTEN = [column.name for column in sessions.c if column.name != "id"]
UPDATE_SESSION: Update = (
    update(sessions)
    .where(sessions.c.id == bindparam("b_id"))
    .values({name: bindparam("v_" + name) for name in _SESSION_WRITTEN})
)


def session_update_params(values: dict[str, Any]) -> dict[str, Any]:
    """Parameters of :data:`UPDATE_SESSION` from ``codec.session_values`` plus the counter."""
    params = {"v_" + name: values[name] for name in _SESSION_WRITTEN}
    params["b_id"] = values["id"]
    return params


COUNT_BY_STATUS: Select[Any] = select(sessions.c.status, func.count().label("sessions")).group_by(
    sessions.c.status
)
STALE_SESSIONS: Select[Any] = (
    select(sessions.c.id)
    .where(
        _IS_ACTIVE,
        or_(
            sessions.c.heartbeat_at < bindparam("b_before"),
            and_(sessions.c.heartbeat_at.is_(None), sessions.c.updated_at < bindparam("b_before")),
        ),
    )
    .order_by(sessions.c.created_at, sessions.c.id)
    .limit(bindparam("b_limit", type_=Integer))
)
#: Oldest first by creation, along the (status, created_at) index: sessions
#: created first are, nearly always, the ones that ended first.
FINISHED_BEFORE: Select[Any] = (
    select(*SESSION_COLUMNS, sessions.c.status)
    .where(_IS_TERMINAL, sessions.c.updated_at < bindparam("b_before"))
    .order_by(sessions.c.created_at, sessions.c.id)
    .limit(bindparam("b_limit", type_=Integer))
    .with_for_update()
)


#: Deletes of every row of the session ``b_id``.
DELETE_SESSION: tuple[Delete, ...] = (
    delete(sub_operations).where(sub_operations.c.session_id == bindparam("b_id")),
    delete(snapshots).where(snapshots.c.session_id == bindparam("b_id")),
    delete(sessions).where(sessions.c.id == bindparam("b_id")),
)


# -- sub-operations -------------------------------------------------------------

READ_SUB_OPERATIONS: Select[Any] = (
    select(sub_operations)
    .where(sub_operations.c.session_id == bindparam("b_id"))
    .order_by(sub_operations.c.position)
)
READ_SUB_OPERATIONS_OF: Select[Any] = (
    select(sub_operations)
    .where(sub_operations.c.session_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(sub_operations.c.session_id, sub_operations.c.position)
)
INSERT_SUB_OPERATIONS: Insert = insert(sub_operations)
_SUB_WRITTEN = [
    column.name for column in sub_operations.c if column.name not in ("session_id", "id")
]
UPDATE_SUB_OPERATION: Update = (
    update(sub_operations)
    .where(
        sub_operations.c.session_id == bindparam("b_session_id"),
        sub_operations.c.id == bindparam("b_id"),
    )
    .values({name: bindparam("v_" + name) for name in _SUB_WRITTEN})
)


def sub_update_params(values: dict[str, Any]) -> dict[str, Any]:
    params = {"v_" + name: values[name] for name in _SUB_WRITTEN}
    params["b_session_id"] = values["session_id"]
    params["b_id"] = values["id"]
    return params


DELETE_SUB_OPERATION: Delete = delete(sub_operations).where(
    sub_operations.c.session_id == bindparam("b_session_id"),
    sub_operations.c.id == bindparam("b_id"),
)

# -- snapshots ------------------------------------------------------------------

INSERT_SNAPSHOT: Insert = insert(snapshots)
READ_HISTORY: Select[Any] = (
    select(snapshots.c.idx, snapshots.c.data)
    .where(snapshots.c.session_id == bindparam("b_id"))
    .order_by(snapshots.c.idx)
)
DELETE_SNAPSHOT: Delete = delete(snapshots).where(
    snapshots.c.session_id == bindparam("b_id"), snapshots.c.idx == bindparam("b_idx")
)
#: Thinning after the stride doubled: drop what is no longer a multiple of it.
THIN_SNAPSHOTS: Delete = delete(snapshots).where(
    snapshots.c.session_id == bindparam("b_id"),
    snapshots.c.idx < bindparam("b_latest"),
    snapshots.c.idx % bindparam("b_stride", type_=Integer) != 0,
)

# -- counters and the event log ---------------------------------------------------

#: The counters row, locked: creations queue here (capacity and duplicate checks).
LOCK_COUNTERS: Select[Any] = (
    select(counters).where(counters.c.id == COUNTERS_ROW_ID).with_for_update()
)
READ_COUNTERS: Select[Any] = select(counters).where(counters.c.id == COUNTERS_ROW_ID)
_ENDED_TOTAL = {
    SessionStatus.COMPLETED: counters.c.completed,
    SessionStatus.FAILED: counters.c.failed,
    SessionStatus.CANCELLED: counters.c.cancelled,
}


@functools.cache
def count_created(status: str) -> Update:
    """``v_count`` more sessions created, now in ``status``."""
    now = counters.c[live_column(status)]
    count = bindparam("v_count", type_=BigInteger)
    return (
        update(counters)
        .where(counters.c.id == COUNTERS_ROW_ID)
        .values({counters.c.created: counters.c.created + count, now: now + count})
    )


@functools.cache
def count_moved(old: str, new: str) -> Update:
    """A session moved from status ``old`` to ``new`` (``v_duration_s``: a completion's)."""
    before, after = counters.c[live_column(old)], counters.c[live_column(new)]
    values: dict[Any, Any] = {before: before - 1, after: after + 1}
    ended = _ENDED_TOTAL.get(SessionStatus(new))
    if ended is not None:
        values[ended] = ended + 1
    if new == SessionStatus.COMPLETED:
        values[counters.c.completed_duration_s] = counters.c.completed_duration_s + bindparam(
            "v_duration_s", type_=Double
        )
    return update(counters).where(counters.c.id == COUNTERS_ROW_ID).values(values)


#: Purged sessions leave the live counts (``v_<status>``: how many of each).
COUNT_PURGED: Update = (
    update(counters)
    .where(counters.c.id == COUNTERS_ROW_ID)
    .values(
        {
            counters.c[live_column(status)]: counters.c[live_column(status)]
            - bindparam(f"v_{status}", type_=BigInteger)
            for status in SessionStatus
        }
    )
)
ADVANCE_SEQUENCE: Update = (
    update(sequence)
    .where(sequence.c.id == SEQUENCE_ROW_ID)
    .values(value=sequence.c.value + bindparam("v_count", type_=Integer))
)
ADVANCE_SEQUENCE_RETURNING: Update = ADVANCE_SEQUENCE.returning(sequence.c.value)
READ_SEQUENCE: Select[Any] = select(sequence.c.value).where(sequence.c.id == SEQUENCE_ROW_ID)
INSERT_EVENTS: Insert = insert(events)
#: One event numbered from the sequence row, already advanced in this
#: transaction: its seq is the row's value minus ``v_back``. No round trip
#: is needed to learn the number before inserting.
INSERT_NUMBERED_EVENT: Insert = insert(events).from_select(
    ["seq", "session_id", "operation_id", "event_type", "timestamp", "data"],
    select(
        sequence.c.value - bindparam("v_back", type_=BigInteger),
        bindparam("v_session_id", type_=events.c.session_id.type),
        bindparam("v_operation_id", type_=events.c.operation_id.type),
        bindparam("v_event_type", type_=events.c.event_type.type),
        bindparam("v_timestamp", type_=events.c.timestamp.type),
        bindparam("v_data", type_=events.c.data.type),
    ).where(sequence.c.id == SEQUENCE_ROW_ID),
)
OLD_EVENTS: Select[Any] = (
    select(events.c.seq)
    .where(events.c.timestamp < bindparam("b_before"))
    .order_by(events.c.seq)
    .limit(bindparam("b_limit", type_=Integer))
)


#: Deletes what ``OLD_EVENTS`` found, given the last seq it returned.
DELETE_OLD_EVENTS: Delete = delete(events).where(
    events.c.seq <= bindparam("b_last"), events.c.timestamp < bindparam("b_before")
)


_EVENTS_AFTER = (
    select(events)
    .where(events.c.seq > bindparam("b_since"))
    .order_by(events.c.seq)
    .limit(bindparam("b_limit", type_=Integer))
)
_SESSION_EVENTS_AFTER = (
    select(events)
    .where(events.c.session_id == bindparam("b_session_id"), events.c.seq > bindparam("b_since"))
    .order_by(events.c.seq)
    .limit(bindparam("b_limit", type_=Integer))
)


#: The latest ``b_limit`` events of a session, newest first.
LATEST_SESSION_EVENTS: Select[Any] = (
    select(events)
    .where(events.c.session_id == bindparam("b_session_id"))
    .order_by(events.c.seq.desc())
    .limit(bindparam("b_limit", type_=Integer))
)


def events_after(by_session: bool) -> Select[Any]:
    return _SESSION_EVENTS_AFTER if by_session else _EVENTS_AFTER
