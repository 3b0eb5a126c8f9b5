"""The progress engine: pure functions from a session and a request to a change.

No I/O, no clocks, no locks: the tracker passes the time in, and a store runs
the function inside its own transaction (a lock for the memory store, a row
lock for SQL), so every check is made against the session as committed and a
rejected request raises before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .bounds import Bounds, encode_metadata
from .config import ProgressConfig, ProgressGranularity
from .errors import InvalidProgress, InvalidTransition, SubOperationNotFound
from .models import (
    SUB_OPERATION_TRANSITIONS,
    JsonDict,
    ProgressEventType,
    ProgressSession,
    ProgressSnapshot,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
    copy_json,
    rollup_percentage,
)
from .states import (
    Cancelled,
    Completed,
    Failed,
    Initializing,
    InProgress,
    Paused,
    ProgressState,
    SessionStatus,
    check_session_transition,
)

__all__ = ["Change", "Engine", "EtaHook", "EventDraft"]

#: Called with the session's percentage, returns an ETA in seconds or None.
EtaHook = Callable[[float], float | None]

E = ProgressEventType

_LIFECYCLE_EVENTS = frozenset(
    {
        E.SESSION_CREATED,
        E.SESSION_COMPLETED,
        E.SESSION_FAILED,
        E.SESSION_CANCELLED,
        E.SESSION_EXPIRED,
        E.SESSION_PAUSED,
        E.SESSION_RESUMED,
        E.STATE_CHANGED,
    }
)
_EVENTS_BY_GRANULARITY: dict[ProgressGranularity, frozenset[ProgressEventType]] = {
    ProgressGranularity.BASIC: frozenset(
        {
            E.SESSION_CREATED,
            E.SESSION_COMPLETED,
            E.SESSION_FAILED,
            E.SESSION_CANCELLED,
            E.SESSION_EXPIRED,
        }
    ),
    ProgressGranularity.STANDARD: _LIFECYCLE_EVENTS | {E.PROGRESS_UPDATED},
    ProgressGranularity.DETAILED: _LIFECYCLE_EVENTS | {E.PROGRESS_UPDATED},
    ProgressGranularity.VERBOSE: frozenset(ProgressEventType),
}
_ENDED_EVENT = {
    SessionStatus.COMPLETED: E.SESSION_COMPLETED,
    SessionStatus.FAILED: E.SESSION_FAILED,
    SessionStatus.CANCELLED: E.SESSION_CANCELLED,
    SessionStatus.PAUSED: E.SESSION_PAUSED,
}
_SUB_EVENT = {
    SubOperationState.ACTIVE: E.SUB_OPERATION_STARTED,
    SubOperationState.COMPLETED: E.SUB_OPERATION_COMPLETED,
    SubOperationState.FAILED: E.SUB_OPERATION_FAILED,
}


_PAUSED = SessionStatus.PAUSED
_IN_PROGRESS = SessionStatus.IN_PROGRESS
_PROGRESS_DRAFT: tuple[ProgressEventType, JsonDict] = (E.PROGRESS_UPDATED, {})


@dataclass(slots=True)
class EventDraft:
    """An event before the store gives it a sequence number."""

    event_type: ProgressEventType
    data: JsonDict


@dataclass(slots=True)
class Change:
    """What one request does: the new session, its events, a snapshot to record.

    ``session.history`` is left as it was; the store appends ``snapshot``
    and thins the history. The snapshot is new and unshared, so the store
    stamps its ``index`` in place rather than copying it.
    """

    session: ProgressSession
    events: tuple[EventDraft, ...] = ()
    snapshot: ProgressSnapshot | None = None


class Engine:
    """Applies requests to sessions under one configuration."""

    def __init__(self, config: ProgressConfig) -> None:
        self.config = config
        self.bounds = Bounds(config)
        granularity = config.granularity_level
        allowed = _EVENTS_BY_GRANULARITY[granularity]
        if not config.enable_detailed_events:
            allowed = allowed & _LIFECYCLE_EVENTS
        self._allowed_events = allowed
        self._detailed = granularity.rank >= ProgressGranularity.DETAILED.rank
        self._verbose = granularity is ProgressGranularity.VERBOSE
        self._every_update_snapshot = granularity is not ProgressGranularity.BASIC

    # -- creating ----------------------------------------------------------

    def create(
        self,
        *,
        session_id: str,
        operation_id: str,
        now: datetime,
        metadata: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> Change:
        self.bounds.identifier(operation_id, "operation_id")
        self.bounds.identifier(session_id, "session_id")
        if parent_id is not None:
            self.bounds.identifier(parent_id, "parent_id")
        meta = self.copy_metadata(metadata or {}, "metadata")
        session = ProgressSession(
            id=session_id,
            operation_id=operation_id,
            created_at=now,
            updated_at=now,
            state=Initializing(),
            metadata=meta,
            parent_id=parent_id,
            heartbeat_at=now,
        )
        extra: JsonDict = {"metadata": copy_json(meta)}  # the event's own
        if parent_id is not None:
            extra["parent_id"] = parent_id
        events = self._events(session, [(E.SESSION_CREATED, extra)])
        return Change(session, events, self._snapshot(session, now, meta, status_changed=True))

    # -- progress ------------------------------------------------------------

    def update(
        self,
        session: ProgressSession,
        state: ProgressState,
        *,
        now: datetime,
        sub_operation_updates: Sequence[SubOperationUpdate] = (),
        metadata: Mapping[str, Any] | None = None,
        eta: EtaHook | None = None,
    ) -> Change:
        state = self.bounds.state(state)
        current = session.state.status
        target = state.status
        if current == _PAUSED and target == _IN_PROGRESS:
            raise InvalidTransition(
                f"session {session.id!r} is paused; resume it with resume_session first"
            )
        check_session_transition(session.id, current, target)
        if sub_operation_updates:
            subs, drafts = self._apply_sub_updates(session, sub_operation_updates, now)
        else:
            subs, drafts = session.sub_operations, []
        own = self.copy_metadata(metadata, "metadata") if metadata else None
        merged = self._merge_metadata(session.metadata, own) if own else session.metadata
        in_progress = target == _IN_PROGRESS
        if in_progress and eta is not None and state.eta_seconds is None:  # type: ignore[union-attr]
            percentage = state.percentage  # type: ignore[union-attr]
            estimate = eta(rollup_percentage(subs) if percentage is None else percentage)
            if estimate is not None:
                state = state.replace(eta_seconds=estimate)
        new = session.replace(
            state=state, sub_operations=subs, metadata=merged, updated_at=now, heartbeat_at=now
        )
        changed = target != current
        if changed:
            drafts.append(self._status_event(session, new))
        if in_progress:
            drafts.append(_PROGRESS_DRAFT)
        snapshot = self._snapshot(new, now, dict(own) if own else {}, changed)
        return Change(new, self._events(new, drafts), snapshot)

    # -- sub-operations -----------------------------------------------------

    def add_sub_operations(
        self, session: ProgressSession, sub_operations: Iterable[SubOperation], *, now: datetime
    ) -> Change:
        self._require_active(session, "add sub-operations to")
        known = {sub.id for sub in session.sub_operations}
        copies = []
        for sub in sub_operations:
            if not isinstance(sub, SubOperation):
                raise InvalidProgress(f"expected SubOperation, got {type(sub).__name__}")
            if sub.id in known:
                raise InvalidProgress(
                    f"duplicate sub-operation id {sub.id!r} in session {session.id!r}"
                )
            known.add(sub.id)
            what = f"metadata of sub-operation {sub.id!r}"
            sub = self.bounds.sub_operation(sub)
            copies.append(sub.replace(metadata=self.copy_metadata(sub.metadata, what)))
        added = tuple(copies)
        new = session.replace(
            sub_operations=session.sub_operations + added, updated_at=now, heartbeat_at=now
        )
        drafts: list[tuple[ProgressEventType, JsonDict]] = [
            (E.SUB_OPERATION_ADDED, _sub_data(sub)) for sub in added
        ]
        return Change(new, self._events(new, drafts), None)

    def change_sub_operation(
        self, session: ProgressSession, update: SubOperationUpdate, *, now: datetime
    ) -> Change:
        """Start, complete, fail or update one sub-operation (never coalesced)."""
        self._require_active(session, "change a sub-operation of")
        subs, drafts = self._apply_sub_updates(session, (update,), now)
        changes: dict[str, Any] = {"sub_operations": subs, "updated_at": now, "heartbeat_at": now}
        starting = (
            update.state is SubOperationState.ACTIVE
            and session.state.status == SessionStatus.INITIALIZING
        )
        if starting:
            # A sub-operation that starts means the work has started.
            changes["state"] = InProgress()
        new = session.replace(**changes)
        if starting:
            drafts.append(self._status_event(session, new))
        snapshot = self._snapshot(new, now, {}, starting) if self._verbose or starting else None
        return Change(new, self._events(new, drafts), snapshot)

    # -- lifecycle -----------------------------------------------------------

    def pause(self, session: ProgressSession, reason: str, *, now: datetime) -> Change:
        if session.state.status == SessionStatus.PAUSED:
            raise InvalidTransition(f"session {session.id!r} is already paused")
        reason = self.bounds.reason(reason)
        state = Paused(reason=reason, paused_at_percentage=session.percentage)
        return self._transition(session, state, now, {"reason": reason})

    def resume(self, session: ProgressSession, *, now: datetime) -> Change:
        if session.state.status != SessionStatus.PAUSED:
            raise InvalidTransition(
                f"session {session.id!r} is {session.state.status}, not paused: nothing to resume"
            )
        assert isinstance(session.state, Paused)
        # With sub-operations the percentage rolls up from them again.
        percentage = None if session.sub_operations else session.state.paused_at_percentage
        state = InProgress(percentage=percentage)
        return self._transition(session, state, now, {}, event=E.SESSION_RESUMED)

    def complete(
        self, session: ProgressSession, result_summary: str | None, *, now: datetime
    ) -> Change:
        result_summary = self.bounds.result_summary(result_summary)
        duration_s = max(0.0, (now - session.created_at).total_seconds())
        state = Completed(
            completed_at=now, result_summary=result_summary, duration_seconds=duration_s
        )
        return self._transition(
            session, state, now, {"result_summary": result_summary, "duration_seconds": duration_s}
        )

    def fail(
        self,
        session: ProgressSession,
        error_message: str,
        error_code: str | None,
        *,
        now: datetime,
    ) -> Change:
        error_message = self.bounds.error(error_message)
        error_code = self.bounds.optional_error(error_code)
        state = Failed(
            failed_at=now,
            error_message=error_message,
            error_code=error_code,
            failed_at_percentage=session.percentage,
        )
        extra = {"error_message": error_message, "error_code": error_code}
        return self._transition(session, state, now, extra)

    def cancel(self, session: ProgressSession, reason: str, *, now: datetime) -> Change:
        reason = self.bounds.reason(reason)
        state = Cancelled(
            cancelled_at=now, reason=reason, cancelled_at_percentage=session.percentage
        )
        # Nothing moves a cancelled session again: what was pending or under way
        # (a group's members, a task's stages) ends with it, in the same change.
        open_ids = [sub.id for sub in session.sub_operations if not sub.state.is_terminal]
        ending = [SubOperationUpdate(id=id_, state=SubOperationState.CANCELLED) for id_ in open_ids]
        return self._transition(session, state, now, {"reason": reason}, ending)

    def heartbeat(self, session: ProgressSession, *, now: datetime) -> Change:
        self._require_active(session, "heartbeat")
        return Change(session.replace(heartbeat_at=now))

    def expired_event(self, session: ProgressSession) -> EventDraft | None:
        """The SessionExpired event for a finished session that cleanup removes."""
        events = self._events(session, [(E.SESSION_EXPIRED, {})])
        return events[0] if events else None

    # -- helpers ---------------------------------------------------------------

    def check_metadata(
        self, metadata: Mapping[str, Any], what: str, *, keys_checked: bool = False
    ) -> None:
        encode_metadata(metadata, self.config.max_metadata_bytes, what, keys_checked=keys_checked)

    def copy_metadata(self, metadata: Mapping[str, Any], what: str) -> JsonDict:
        """Check ``metadata`` and return a copy of it as JSON has it.

        The copy shares nothing with the caller, who may go on changing its
        dict: what is stored is what was checked, and what another process
        reads back from a store.
        """
        copy: JsonDict = json.loads(encode_metadata(metadata, self.config.max_metadata_bytes, what))
        return copy

    def _merge_metadata(self, current: JsonDict, update: JsonDict) -> JsonDict:
        """``update`` merged in; it is a checked copy (``copy_metadata``)."""
        merged = {**current, **update}
        self.check_metadata(merged, "the session's merged metadata", keys_checked=True)
        return merged

    def _require_active(self, session: ProgressSession, action: str) -> None:
        if session.state.status in (
            SessionStatus.COMPLETED,
            SessionStatus.FAILED,
            SessionStatus.CANCELLED,
        ):
            raise InvalidTransition(
                f"cannot {action} session {session.id!r}: it is already {session.state.status}"
            )

    def _transition(
        self,
        session: ProgressSession,
        state: ProgressState,
        now: datetime,
        extra: JsonDict,
        sub_updates: Sequence[SubOperationUpdate] = (),
        *,
        event: ProgressEventType | None = None,
    ) -> Change:
        check_session_transition(session.id, session.state.status, state.status)
        subs, drafts = self._apply_sub_updates(session, sub_updates, now)
        new = session.replace(state=state, sub_operations=subs, updated_at=now, heartbeat_at=now)
        event_type = event or _ENDED_EVENT[state.status]
        snapshot = self._snapshot(new, now, {}, status_changed=True)
        return Change(new, self._events(new, [*drafts, (event_type, extra)]), snapshot)

    def _status_event(
        self, old: ProgressSession, new: ProgressSession
    ) -> tuple[ProgressEventType, JsonDict]:
        event_type = _ENDED_EVENT.get(new.state.status, E.STATE_CHANGED)
        return event_type, {"old_status": old.state.status, "new_status": new.state.status}

    def _apply_sub_updates(
        self,
        session: ProgressSession,
        updates: Sequence[SubOperationUpdate],
        now: datetime,
    ) -> tuple[tuple[SubOperation, ...], list[tuple[ProgressEventType, JsonDict]]]:
        if not updates:
            return session.sub_operations, []
        subs = list(session.sub_operations)
        position = {sub.id: i for i, sub in enumerate(subs)}
        drafts: list[tuple[ProgressEventType, JsonDict]] = []
        for update in updates:
            index = position.get(update.id)
            if index is None:
                raise SubOperationNotFound(session.id, update.id)
            sub = subs[index]
            target = update.state or sub.state
            if target != sub.state and target not in SUB_OPERATION_TRANSITIONS[sub.state]:
                raise InvalidTransition(
                    f"sub-operation {sub.id!r} of session {session.id!r} cannot go "
                    f"{sub.state.value} -> {target.value}"
                )
            if target == sub.state and sub.state.is_terminal:
                raise InvalidTransition(
                    f"sub-operation {sub.id!r} of session {session.id!r} is already "
                    f"{sub.state.value}"
                )
            changes: dict[str, Any] = {"state": target}
            if update.percentage is not None:
                changes["percentage"] = update.percentage
            elif target is SubOperationState.COMPLETED:
                changes["percentage"] = 100.0
            if update.metadata:
                what = f"metadata of sub-operation {sub.id!r}"
                own = self.copy_metadata(update.metadata, what)
                changes["metadata"] = {**sub.metadata, **own}
                self.check_metadata(changes["metadata"], what, keys_checked=True)
            if update.error is not None:
                changes["error"] = self.bounds.optional_error(update.error, f"error of {sub.id!r}")
            if target is SubOperationState.ACTIVE and sub.started_at is None:
                changes["started_at"] = now
            if target.is_terminal:
                changes["ended_at"] = now
            subs[index] = new_sub = sub.replace(**changes)
            event_type = (
                _SUB_EVENT.get(target, E.SUB_OPERATION_UPDATED)
                if target != sub.state
                else E.SUB_OPERATION_UPDATED
            )
            drafts.append((event_type, _sub_data(new_sub)))
        return tuple(subs), drafts

    def _events(
        self, session: ProgressSession, drafts: list[tuple[ProgressEventType, JsonDict]]
    ) -> tuple[EventDraft, ...]:
        allowed = self._allowed_events
        events: list[EventDraft] = []
        base: JsonDict | None = None
        for kind, extra in drafts:
            if kind in allowed:
                if base is None:
                    base = self._view(session)
                events.append(EventDraft(kind, {**base, **extra} if extra else base))
        return tuple(events)

    def _view(self, session: ProgressSession) -> JsonDict:
        """What a viewer needs of the session, as granularity allows."""
        state = session.state
        data: JsonDict = {"status": state.status, "percentage": session.percentage}
        if self._detailed and isinstance(state, InProgress):
            data["current_step"] = state.current_step
            data["current_step_number"] = state.current_step_number
            data["total_steps"] = state.total_steps
            data["eta_seconds"] = state.eta_seconds
        return data

    def _snapshot(
        self,
        session: ProgressSession,
        now: datetime,
        metadata: JsonDict,
        status_changed: bool,
    ) -> ProgressSnapshot | None:
        if not (status_changed or self._every_update_snapshot):
            return None
        state = session.state
        if isinstance(state, InProgress) and not self._detailed:
            state = InProgress.trusted(
                status=SessionStatus.IN_PROGRESS,
                percentage=session.percentage,
                current_step=None,
                total_steps=None,
                current_step_number=None,
                eta_seconds=None,
            )
        elif isinstance(state, InProgress) and state.percentage is None:
            # History is drawn over time: record the rolled-up percentage of
            # that moment, which the sub-operations alone would not give later.
            state = state.replace(percentage=session.percentage)
        return ProgressSnapshot.trusted(
            timestamp=now,
            state=state,
            metadata=metadata,
            sub_operations=session.sub_operations if self._verbose else None,
            index=0,
        )


def _sub_data(sub: SubOperation) -> JsonDict:
    data: JsonDict = {
        "sub_operation_id": sub.id,
        "sub_operation_name": sub.name,
        "sub_operation_state": sub.state.value,
        "sub_operation_percentage": sub.percentage,
    }
    if sub.error is not None:
        data["sub_operation_error"] = sub.error
    return data
