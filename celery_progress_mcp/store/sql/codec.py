"""Models to rows and back: JSON text for what is read whole, columns for what is queried."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...core.engine import EventDraft
from ...core.errors import InvalidProgress
from ...core.models import (
    JsonDict,
    ProgressEvent,
    ProgressEventType,
    ProgressSession,
    ProgressSnapshot,
    SubOperation,
    SubOperationState,
)
from ...core.states import state_adapter
from .schema import MAX_ID_LENGTH

__all__ = [
    "check_ids",
    "decode_event",
    "decode_session",
    "decode_snapshot",
    "decode_sub_operation",
    "dump_json",
    "event_row",
    "logged_event",
    "numbered_event_params",
    "session_values",
    "snapshot_values",
    "sub_operation_values",
]


#: Built once: ``json.dumps`` with options builds a new encoder on every call.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def dump_json(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # most updates carry no metadata
    return _encode(value)


def check_ids(session: ProgressSession) -> None:
    """Refuse what the text columns cannot hold, before anything is written.

    Ids longer than the id columns, and NUL characters, which PostgreSQL's
    text cannot store (inside JSON they are escaped, so metadata may hold them).
    """
    ids = [("session id", session.id), ("operation_id", session.operation_id)]
    if session.parent_id is not None:
        ids.append(("parent_id", session.parent_id))
    texts = []
    for sub in session.sub_operations:
        ids.append(("sub-operation id", sub.id))
        texts.append((f"the name of sub-operation {sub.id!r}", sub.name))
        if sub.error is not None:
            texts.append((f"the error of sub-operation {sub.id!r}", sub.error))
    for what, value in ids:
        if len(value) > MAX_ID_LENGTH:
            raise InvalidProgress(
                f"{what} {value[:40]!r}... is {len(value)} characters long; "
                f"the SQL store keeps at most {MAX_ID_LENGTH}"
            )
    for what, value in ids + texts:
        if "\x00" in value:
            raise InvalidProgress(f"{what} contains a NUL character, which cannot be stored")


def session_values(session: ProgressSession) -> dict[str, Any]:
    """The ``progress_sessions`` columns of ``session`` but the two counters."""
    return {
        "id": session.id,
        "operation_id": session.operation_id,
        "parent_id": session.parent_id,
        "status": str(session.state.status),
        "percentage": session.percentage,
        "state": session.state.model_dump_json(),
        "metadata": dump_json(session.metadata),
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "heartbeat_at": session.heartbeat_at,
    }


def decode_session(
    values: Mapping[Any, Any],
    subs: Sequence[SubOperation] = (),
    history: Sequence[ProgressSnapshot] = (),
) -> ProgressSession:
    return ProgressSession.trusted(
        id=values["id"],
        operation_id=values["operation_id"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        state=state_adapter.validate_json(values["state"]),
        sub_operations=tuple(subs),
        history=tuple(history),
        metadata=json.loads(values["metadata"]),
        parent_id=values["parent_id"],
        heartbeat_at=values["heartbeat_at"],
    )


def sub_operation_values(session_id: str, position: int, sub: SubOperation) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "id": sub.id,
        "position": position,
        "name": sub.name,
        "state": sub.state.value,
        "percentage": sub.percentage,
        "weight": sub.weight,
        "started_at": sub.started_at,
        "ended_at": sub.ended_at,
        "error": sub.error,
        "metadata": dump_json(sub.metadata),
    }


def decode_sub_operation(values: Mapping[Any, Any]) -> SubOperation:
    return SubOperation.trusted(
        id=values["id"],
        name=values["name"],
        state=SubOperationState(values["state"]),
        percentage=values["percentage"],
        started_at=values["started_at"],
        ended_at=values["ended_at"],
        metadata=json.loads(values["metadata"]),
        weight=values["weight"],
        error=values["error"],
    )


def snapshot_values(
    session_id: str, snapshot: ProgressSnapshot, index: int, state_json: str | None = None
) -> dict[str, Any]:
    """``state_json``: the snapshot's state already encoded (for the session row)."""
    if state_json is None or snapshot.sub_operations is not None:
        data = snapshot.model_dump_json(exclude={"index"})
    else:
        data = (
            f'{{"timestamp":"{snapshot.timestamp.isoformat()}","state":{state_json},'
            f'"metadata":{dump_json(snapshot.metadata)}}}'
        )
    return {"session_id": session_id, "idx": index, "data": data}


def decode_snapshot(index: int, data: str) -> ProgressSnapshot:
    snapshot = ProgressSnapshot.model_validate_json(data)
    return snapshot.model_copy(update={"index": index})


#: The columns of an event row besides ``seq``, in the order of :func:`_event_values`.
_EVENT_COLUMNS = ("session_id", "operation_id", "event_type", "timestamp", "data")
#: The same as parameters of ``INSERT_NUMBERED_EVENT``.
_NUMBERED_EVENT_PARAMS = tuple("v_" + column for column in _EVENT_COLUMNS)


def _event_values(session: ProgressSession, draft: EventDraft) -> tuple[Any, ...]:
    return (
        session.id,
        session.operation_id,
        draft.event_type.value,
        session.updated_at,
        dump_json(draft.data),
    )


def event_row(seq: int, session: ProgressSession, draft: EventDraft) -> dict[str, Any]:
    """A ``progress_events`` row."""
    row = dict(zip(_EVENT_COLUMNS, _event_values(session, draft), strict=True))
    row["seq"] = seq
    return row


def numbered_event_params(back: int, session: ProgressSession, draft: EventDraft) -> dict[str, Any]:
    """Parameters of ``INSERT_NUMBERED_EVENT``: the event ``back`` places before the last."""
    params = dict(zip(_NUMBERED_EVENT_PARAMS, _event_values(session, draft), strict=True))
    params["v_back"] = back
    return params


def logged_event(seq: int, session: ProgressSession, draft: EventDraft) -> ProgressEvent:
    return ProgressEvent.trusted(
        seq=seq,
        session_id=session.id,
        operation_id=session.operation_id,
        event_type=draft.event_type,
        timestamp=session.updated_at,
        data=draft.data,
    )


def decode_event(values: Mapping[Any, Any]) -> ProgressEvent:
    data: JsonDict = json.loads(values["data"])
    return ProgressEvent.trusted(
        seq=values["seq"],
        session_id=values["session_id"],
        operation_id=values["operation_id"],
        event_type=ProgressEventType(values["event_type"]),
        timestamp=values["timestamp"],
        data=data,
    )
