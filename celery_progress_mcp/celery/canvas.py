"""Groups, chords and chains as one session each, their members as sub-operations.

Members run on many workers at once, so every change to a parent session is
an engine function run atomically in the store on the committed session
(``member_mutation``): read-modify-write races lose nothing.

The rollup never goes down. A group's members are learnt one by one as they
are published, and one may even finish before the last is published; a
percentage over the members known so far would drop as more arrive, and
the group would seem complete early. So a parent is *sealed* once its
dispatch has finished (``GroupResult`` built by ``group.apply_async``; a
chain knows all its tasks from its first message): before that its
percentage stays at 0 and it cannot complete; after it, its percentage is
``max(previous, weighted mean of members)``, written explicitly.

A parent completes when it is sealed and every member (and a chord's
callback, its last sub-operation) has completed; it fails as soon as a
member fails, naming it; it is cancelled when a member is (a revoked group
revokes every member). A cancelled parent's members still pending or running
end Cancelled in the same change (``Engine.cancel``), and stay so: a
member's later end (it finished, or was revoked) is refused on the ended
parent. :class:`Rollup` writes a member's changes into its parent, and a
parent's end into its own parent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..core.engine import Change, Engine
from ..core.errors import InvalidTransition
from ..core.models import (
    ProgressSession,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
    rollup_percentage,
)
from ..core.states import (
    TERMINAL_STATUSES,
    Initializing,
    InProgress,
    Paused,
    SessionStatus,
    percentage_of,
)
from ..store.base import Mutation
from ..tracking.named_calls import NamedCall, named_call
from .metadata_keys import GROUP_INDEX, MEMBERS, SEALED
from .safe_sessions import SafeSessions
from .worker_runtime import Running

__all__ = [
    "MEMBER_CALL",
    "SEAL_CALL",
    "Member",
    "MemberCall",
    "MemberChange",
    "Rollup",
    "SealCall",
    "chain_session_id",
    "combined",
    "is_chain_session",
    "member_mutation",
    "seal_mutation",
]

_ACTIVE = SubOperationState.ACTIVE
_COMPLETED = SubOperationState.COMPLETED
_FAILED = SubOperationState.FAILED
_CANCELLED = SubOperationState.CANCELLED
#: How a chain's own session id begins.
_CHAIN_PREFIX = "chain:"
#: The names of the rollup's calls (``tracking.named_calls``), as journals keep them.
MEMBER_CALL = "celery.member"
SEAL_CALL = "celery.seal"


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a group, chord or chain: its task id, task name, weight, position."""

    id: str
    name: str
    weight: float = 1.0
    index: int = 0

    def sub_operation(self) -> SubOperation:
        return SubOperation(
            id=self.id,
            name=self.name,
            weight=self.weight,
            metadata={GROUP_INDEX: self.index},
        )

    @classmethod
    def of(cls, running: Running) -> Member:
        """The member a task running here is."""
        return cls(running.session_id, running.task_name, running.weight, running.index or 0)


@dataclass(frozen=True, slots=True)
class MemberChange:
    """What happened to a member: started, progressed, completed, failed, cancelled."""

    member: Member
    state: SubOperationState | None = None
    percentage: float | None = None
    error: str | None = None


# -- mutations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberCall:
    """The arguments of :func:`member_mutation`."""

    change: MemberChange
    now: datetime


@dataclass(frozen=True, slots=True)
class SealCall:
    """The arguments of :func:`seal_mutation`."""

    members: tuple[Member, ...]
    callback: Member | None
    now: datetime


def member_mutation(engine: Engine, change: MemberChange, now: datetime) -> Mutation:
    """Record a member's change in its parent, then settle the parent. A named call
    (data: a journal can keep it)."""
    return NamedCall(MEMBER_CALL, engine, MemberCall(change, now))


@named_call(MEMBER_CALL, MemberCall)
def _member_changed(engine: Engine, parent: ProgressSession, call: MemberCall) -> Change:
    change, now = call.change, call.now
    _require_active(parent)
    steps: list[Change] = []
    session = parent
    sub = session.sub_operation(change.member.id)
    if sub is None:
        step = engine.add_sub_operations(session, [change.member.sub_operation()], now=now)
        steps.append(step)
        session = step.session
        sub = session.sub_operation(change.member.id)
        assert sub is not None
    update = _sub_update(sub, change)
    if update is not None:
        step = engine.change_sub_operation(session, update, now=now)
        steps.append(step)
        session = step.session
    return combined(parent, steps + _settle(engine, session, now))


def seal_mutation(
    engine: Engine, members: Sequence[Member], callback: Member | None, now: datetime
) -> Mutation:
    """Add every member (and the callback, last) the parent lacks; mark it sealed.
    A named call."""
    return NamedCall(SEAL_CALL, engine, SealCall(tuple(members), callback, now))


@named_call(SEAL_CALL, SealCall)
def _seal(engine: Engine, parent: ProgressSession, call: SealCall) -> Change:
    now = call.now
    _require_active(parent)
    steps: list[Change] = []
    known = {sub.id for sub in parent.sub_operations}
    ordered = sorted(call.members, key=lambda member: member.index)
    wanted = [*ordered, call.callback] if call.callback is not None else ordered
    missing = [member.sub_operation() for member in wanted if member.id not in known]
    session = parent
    if missing:
        step = engine.add_sub_operations(session, missing, now=now)
        steps.append(step)
        session = step.session
    position = {member.id: i for i, member in enumerate(wanted)}
    subs = tuple(sorted(session.sub_operations, key=lambda sub: position.get(sub.id, -1)))
    metadata = {**session.metadata, SEALED: True, MEMBERS: len(subs)}
    session = session.replace(sub_operations=subs, metadata=metadata)
    sealed = Change(session, steps[-1].events if steps else (), None)
    return combined(parent, [*steps[:-1], sealed, *_settle(engine, session, now)])


def _require_active(session: ProgressSession) -> None:
    if session.state.status in TERMINAL_STATUSES:
        raise InvalidTransition(f"session {session.id!r} is already {session.state.status}")


def _sub_update(sub: SubOperation, change: MemberChange) -> SubOperationUpdate | None:
    if sub.state.is_terminal:
        return None  # a duplicate (a redelivery, a late signal): the first word stands
    target = change.state
    if target is _ACTIVE and sub.state is _ACTIVE:
        target = None
    percentage = None
    if change.percentage is not None and change.percentage > sub.percentage:
        percentage = change.percentage  # members only ever move forward
    if target is None and percentage is None:
        return None
    return SubOperationUpdate(id=sub.id, state=target, percentage=percentage, error=change.error)


def _settle(engine: Engine, session: ProgressSession, now: datetime) -> list[Change]:
    """The parent's own state, from its members."""
    subs = session.sub_operations
    failed = next((sub for sub in subs if sub.state is _FAILED), None)
    if failed is not None:
        message = f"member {failed.name} [{failed.id}] failed: {failed.error or 'unknown error'}"
        return [engine.fail(session, message, "MEMBER_FAILED", now=now)]
    cancelled = next((sub for sub in subs if sub.state is _CANCELLED), None)
    if cancelled is not None:
        reason = f"member {cancelled.name} [{cancelled.id}] was cancelled"
        return [engine.cancel(session, reason, now=now)]
    sealed = bool(session.metadata.get(SEALED))
    if sealed and subs and all(sub.state.is_terminal for sub in subs):
        return [engine.complete(session, f"{len(subs)} members completed", now=now)]
    state = session.state
    if isinstance(state, Paused):
        return []
    started = any(sub.state is not SubOperationState.PENDING for sub in subs)
    if isinstance(state, Initializing) and not started:
        return []
    previous = percentage_of(state) if isinstance(state, InProgress) else None
    target = rollup_percentage(subs) if sealed else 0.0
    percentage = max(previous or 0.0, target)
    if isinstance(state, InProgress) and previous == percentage:
        return []
    return [engine.update(session, InProgress(percentage=percentage), now=now)]


def combined(parent: ProgressSession, steps: Iterable[Change]) -> Change:
    """One change from several made one after the other."""
    steps = list(steps)
    if not steps:
        return Change(parent)
    events = tuple(event for step in steps for event in step.events)
    snapshot = next((step.snapshot for step in reversed(steps) if step.snapshot), None)
    return Change(steps[-1].session, events, snapshot)


def chain_session_id(first_task_id: str) -> str:
    """The id of a chain's own session (its tasks keep theirs)."""
    return f"{_CHAIN_PREFIX}{first_task_id}"


def is_chain_session(session_id: str) -> bool:
    """Whether ``session_id`` is a chain's own session (see :func:`chain_session_id`)."""
    return session_id.startswith(_CHAIN_PREFIX)


class Rollup:
    """A member's changes written into its group, chord or chain session."""

    def __init__(self, sessions: SafeSessions) -> None:
        self._sessions = sessions
        self._tracker = sessions.tracker

    def member_changed(self, parent_id: str, change: MemberChange) -> None:
        """Record a member's change in its parent; a parent that ended tells its own parent."""
        tracker = self._tracker
        mutation = member_mutation(tracker.engine, change, tracker.clock.now())
        # Deferred: the store decides, in the writer's next batch. A parent's end
        # is passed up from here only where this process knows the parent.
        parent = self._sessions.defer(parent_id, mutation)
        if parent is None or parent.parent_id is None:
            return
        if parent.state.status in (SessionStatus.COMPLETED, SessionStatus.FAILED):
            state = _COMPLETED if parent.state.status == SessionStatus.COMPLETED else _FAILED
            error = getattr(parent.state, "error_message", None)
        elif parent.state.status == SessionStatus.CANCELLED:
            state, error = _CANCELLED, None
        else:
            return
        member = Member(parent.id, parent.operation_id, 1.0, 0)
        self.member_changed(parent.parent_id, MemberChange(member, state, 100.0, error))

    def session_percentage(self, running: Running) -> float | None:
        """A running member's percentage as its session has it (rolled up from its stages)."""
        return self._tracker.get_session(running.session_id).percentage

    def push(self, running: Running, percentage: float) -> None:
        """A running member's latest percentage (the worker's ticker, once per window)."""
        if running.parent_id is not None:
            self.member_changed(
                running.parent_id, MemberChange(Member.of(running), percentage=percentage)
            )
