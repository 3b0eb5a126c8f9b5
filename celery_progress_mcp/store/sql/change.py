"""Writing one engine change inside a transaction that has locked its session.

A change touches only what it changed: the session row (rewritten with a
new ``revision`` token when any of its columns moved), the sub-operation
rows that were added or changed, the snapshot it recorded (thinning the
history by the rule of ``core.history``), the live counts on a status
change and, through the given :class:`~.batch.Writes`, its events. The
revision token is what tells a writer (and a replayed write in doubt)
whether the row is still as this process left it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...core.engine import Change
from ...core.history import stride_for
from ...core.models import ProgressEvent, ProgressSession, ProgressSnapshot, SubOperation
from ...core.states import Completed
from ..base import Mutation
from . import codec
from . import statements as q
from .batch import Writes
from .executor import Executor
from .session_cache import CachedSession

__all__ = [
    "Written",
    "new_revision",
    "state_json",
    "write_change",
    "write_creation",
    "write_sub_operations",
]


@dataclass(frozen=True, slots=True)
class Written:
    """One mutation's writes, sent and not yet committed."""

    cached: CachedSession
    #: The logged events, once the commit has been read back.
    logged: Callable[[], list[ProgressEvent]]
    #: The session row was rewritten (with a new revision).
    revised: bool
    progress_only: bool
    events: int


def write_change(
    ex: Executor,
    loaded: CachedSession,
    mutation: Mutation,
    history_limit: int,
    writes: Writes,
) -> Written:
    """Run ``mutation`` on the locked session and hand its writes to ``writes``
    (sent at once, or held back by a batch's :class:`~.batch.Deferred`); no commit.

    The mutation runs first: if it raises, nothing has been sent.
    """
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
        values["revision"] = revision = new_revision()
        writes.write_row(current.id, values)
    if change.snapshot is not None:
        _record_snapshot(
            writes,
            current.id,
            change.snapshot,
            snapshot_count,
            history_limit,
            state_json(change, values),
        )
        snapshot_count += 1
    write_sub_operations(
        ex,
        current.id,
        {sub.id: (i, sub) for i, sub in enumerate(current.sub_operations)},
        new.sub_operations,
    )
    if new.state.status != current.state.status:
        _count_transition(ex, current, new)
    return Written(
        CachedSession(new, revision, snapshot_count),
        writes.log_events(new, change.events),
        revised=values is not None,
        progress_only=_progress_only(current, new),
        events=len(change.events),
    )


def write_creation(ex: Executor, change: Change, writes: Writes) -> Written:
    """Insert the new session of ``change`` (its row, sub-operations, snapshot,
    events and its count) through ``writes``; no commit. The caller has made sure
    that the session does not exist and that there is room for it."""
    session = change.session
    codec.check_ids(session)
    values = codec.session_values(session)
    values["snapshot_count"] = snapshot_count = 1 if change.snapshot is not None else 0
    values["revision"] = revision = new_revision()
    writes.insert_row(session.id, values)
    writes.count_created(session.state.status)
    write_sub_operations(ex, session.id, {}, session.sub_operations)
    if change.snapshot is not None:
        row = codec.snapshot_values(session.id, change.snapshot, 0, state_json(change, values))
        writes.add_snapshot(session.id, 0, row)
    return Written(
        CachedSession(session, revision, snapshot_count),
        writes.log_events(session, change.events),
        revised=True,
        progress_only=False,
        events=len(change.events),
    )


def write_sub_operations(
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


def new_revision() -> int:
    """A token no other write of the row will pick: the row's version, for caches and doubt."""
    return random.getrandbits(62)


def state_json(change: Change, session_row: dict[str, Any] | None) -> str | None:
    """The session row's state JSON, when the snapshot records that same state."""
    if session_row is None or change.snapshot is None:
        return None
    return str(session_row["state"]) if change.snapshot.state is change.session.state else None


def _record_snapshot(
    writes: Writes,
    session_id: str,
    snapshot: ProgressSnapshot,
    index: int,
    history_limit: int,
    known_state_json: str | None,
) -> None:
    """Append snapshot ``index`` and thin the history by the rule of ``core.history``."""
    writes.add_snapshot(
        session_id, index, codec.snapshot_values(session_id, snapshot, index, known_state_json)
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


def _count_transition(ex: Executor, old: ProgressSession, new: ProgressSession) -> None:
    """Move the session between the live counts (and count an ending)."""
    statement = q.count_moved(old.state.status, new.state.status)
    if isinstance(new.state, Completed):
        ex.run(statement, {"v_duration_s": new.state.duration_seconds})
    else:
        ex.run(statement)


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
