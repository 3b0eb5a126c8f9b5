"""The lifecycle of a task's session, from Celery's signals in the worker.

``task_prerun`` starts it (or continues it: a retry's next attempt, a
redelivered message), ``task_success``/``task_failure``/``task_revoked``
end it, ``task_retry`` records the attempt (the percentage back to
:data:`RETRY_PERCENTAGE`, step "retry N scheduled"); each also tells the
task's group, chord or chain (:class:`.canvas.Rollup`).

None of them waits on the store: each write is queued for the tracker's
writer and group-committed with the others (``SafeSessions.defer``), in
order per session. The start reads nothing: the worker queues the session's
creation, skipped if the session exists (the dispatcher's, normally; the
worker's own, dated from the message's dispatch time, if that one was lost
or is late), then :func:`start_mutation`, which decides in the store's
transaction how the run begins. A start refused because the session was
cancelled while queued reaches :meth:`TaskLifecycle.on_refused`, which
marks the running task cancelled: it stops at its next update.
"""

from __future__ import annotations

import functools
import logging
import os
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..core.engine import Change, Engine
from ..core.errors import InvalidTransition, ProgressError
from ..core.models import ProgressSession, SubOperationState
from ..core.states import TERMINAL_STATUSES, Cancelled, InProgress, Paused
from ..store.base import Mutation
from ..tracking.named_calls import NamedCall, named_call
from .canvas import Member, MemberChange, Rollup, combined, is_chain_session
from .dispatch import dispatched_at, header_of, next_link_of, parent_creation, parent_of
from .errors import TaskCancelled
from .metadata_keys import (
    ATTEMPT,
    EXPIRED,
    GROUP_INDEX,
    PID,
    REDELIVERED,
    RETRY_REASON,
    REVOKED,
    TERMINATED,
    WORKER,
)
from .safe_sessions import SafeSessions
from .task import TrackedTasks
from .worker_runtime import Running, WorkerRuntime

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger(__name__)

__all__ = [
    "ERROR_MESSAGE_CHARS",
    "RESULT_SUMMARY_CHARS",
    "RETRY_PERCENTAGE",
    "REVOKE_CALL",
    "START_CALL",
    "Revoke",
    "Start",
    "StartRefused",
    "TaskLifecycle",
    "failure_of",
    "revoke_mutation",
    "start_mutation",
    "summarize",
]

#: The names of the lifecycle's calls (``tracking.named_calls``), as journals keep them.
START_CALL = "celery.start"
REVOKE_CALL = "celery.revoke"
#: Longest result summary recorded on completion.
RESULT_SUMMARY_CHARS = 200
#: Longest error message recorded on failure.
ERROR_MESSAGE_CHARS = 1000
#: A retried task's percentage (0..100) while its next attempt waits, step "retry N
#: scheduled"; that attempt starts here too and climbs again. MCP progress never
#: goes down (``mcp.progress_notices``): it resumes once the attempt passes its mark.
RETRY_PERCENTAGE = 0.0

_summary_repr = reprlib.Repr()
_summary_repr.maxstring = RESULT_SUMMARY_CHARS
_summary_repr.maxother = RESULT_SUMMARY_CHARS
_summary_repr.maxlist = 10
_summary_repr.maxdict = 10


def summarize(result: Any) -> str:
    """A short repr of a task's return value."""
    return _summary_repr.repr(result)[: RESULT_SUMMARY_CHARS + 3]


def failure_of(exception: BaseException | None) -> tuple[str, str]:
    """A failed task's error message and code: the exception's message and type.

    A pool process that died under its task (Celery's ``WorkerLostError``)
    is ``"WORKER_LOST"``, as the liveness sweep calls a dead worker.
    """
    code = type(exception).__name__ if exception is not None else "UNKNOWN"
    if code == "WorkerLostError":
        code = "WORKER_LOST"
    message = str(exception) if exception is not None else ""
    return (message or repr(exception) or code)[:ERROR_MESSAGE_CHARS], code


class StartRefused(InvalidTransition):
    """A task's start, refused in the store: its session had ended before.

    ``cancelled``: it was cancelled while the task was queued (``reason``);
    the task is to stop at its next update.
    """

    def __init__(self, session: ProgressSession) -> None:
        state = session.state
        self.cancelled = isinstance(state, Cancelled)
        self.reason = state.reason if isinstance(state, Cancelled) else ""
        super().__init__(f"session {session.id!r} is {state.status}: the task does not start it")


@dataclass(frozen=True, slots=True)
class Start:
    """The arguments of a run's start (:func:`start_mutation`)."""

    now: datetime
    attempt: int
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Revoke:
    """The arguments of a revoked task's end (Cancelled, ``details`` in the metadata)."""

    reason: str
    details: dict[str, bool]
    now: datetime


def start_mutation(
    engine: Engine, now: datetime, attempt: int, metadata: dict[str, Any]
) -> Mutation:
    """A run's start, decided on the session as the store has it.

    * Initializing, or a previous attempt's session (a retry): in progress at
      0 %, with the worker's ``metadata``;
    * in progress or paused by this very attempt: a redelivered message
      (``acks_late``); the session continues where it was (resumed if paused);
    * ended: refused (:class:`StartRefused`); a paused previous attempt too
      (the engine refuses it: only a resume leaves a pause).

    A named call (data: a journal can keep it).
    """
    return NamedCall(START_CALL, engine, Start(now, attempt, metadata))


@named_call(START_CALL, Start)
def _start(engine: Engine, session: ProgressSession, call: Start) -> Change:
    state = session.state
    if state.status in TERMINAL_STATUSES:
        raise StartRefused(session)
    steps: list[Change] = []
    current = session
    start = InProgress(percentage=0.0)
    meta = dict(call.metadata)
    if isinstance(state, InProgress | Paused) and session.metadata.get(ATTEMPT) == call.attempt:
        meta[REDELIVERED] = True
        if isinstance(state, Paused):
            steps.append(engine.resume(current, now=call.now))
            current = steps[-1].session
        # With sub-operations the percentage rolls up from them.
        start = InProgress(percentage=None if current.sub_operations else current.percentage)
    steps.append(engine.update(current, start, metadata=meta, now=call.now))
    return combined(session, steps)


def revoke_mutation(
    engine: Engine, reason: str, details: dict[str, bool], now: datetime
) -> Mutation:
    """A revoked task's end: Cancelled with ``reason``, ``details`` (revoked,
    terminated, expired) in its metadata. A named call."""
    return NamedCall(REVOKE_CALL, engine, Revoke(reason, details, now))


@named_call(REVOKE_CALL, Revoke)
def _revoke(engine: Engine, session: ProgressSession, call: Revoke) -> Change:
    marked = session.replace(metadata={**session.metadata, **call.details})
    return engine.cancel(marked, call.reason, now=call.now)


class TaskLifecycle:
    """A task's session through its run: the signal handlers of a running task."""

    def __init__(
        self,
        tasks: TrackedTasks,
        sessions: SafeSessions,
        rollup: Rollup,
        runtime: WorkerRuntime,
    ) -> None:
        self._tasks = tasks
        self._sessions = sessions
        self._tracker = sessions.tracker
        self._rollup = rollup
        self._runtime = runtime

    def on_prerun(self, task: Task, task_id: str) -> None:
        request = task.request
        sessions = self._sessions
        group_index = getattr(request, "group_index", None)
        parent_id = parent_of(request)
        metadata = self._tasks.metadata(task, {"eta": getattr(request, "eta", None)})
        if group_index is not None:
            metadata[GROUP_INDEX] = group_index
        dispatched = dispatched_at(request)
        member = group_index is not None or (parent_id and is_chain_session(parent_id))
        if parent_id is not None and member and dispatched is not None:
            # A tracking dispatcher (the header says so) makes its group (or chain) and
            # seals it; that creation may still be queued in its writer. Made here if
            # absent, so that this member's changes find their parent.
            name, meta = parent_creation(self._tasks, header_of(request, "chord"), parent_id)
            sessions.create(parent_id, name, meta, None, dispatched, if_absent=True)
        sessions.create(task_id, task.name, metadata, parent_id, dispatched, if_absent=True)
        running = Running(
            session_id=task_id,
            task_name=task.name,
            hostname=getattr(request, "hostname", None),
            parent_id=parent_id,
            next_link=next_link_of(request, parent_id),
            weight=self._tasks.weight(task),
            index=group_index if isinstance(group_index, int) else None,
        )
        # Known here before its start is queued: a refusal of the start finds it.
        self._runtime.started(running)
        attempt = int(getattr(request, "retries", 0) or 0) + 1
        worker = {WORKER: getattr(request, "hostname", None), PID: os.getpid(), ATTEMPT: attempt}
        sessions.defer(task_id, start_mutation(self._tracker.engine, self._now(), attempt, worker))
        if parent_id is not None:
            change = MemberChange(Member.of(running), SubOperationState.ACTIVE)
            self._rollup.member_changed(parent_id, change)

    def on_refused(self, session_id: str, error: ProgressError) -> None:
        """The store refused a write the tracker queued (its refusal listener)."""
        if isinstance(error, StartRefused) and error.cancelled:
            running = self._runtime.get(session_id)
            if running is not None:
                running.cancel_reason = error.reason
                running.cancelled = True  # cancelled while queued: stop at the next update

    def on_success(self, task: Task, result: Any) -> None:
        task_id = task.request.id
        if not task_id:
            return
        running = self._runtime.finished(task_id)
        self._end(task_id, self._tracker.engine.complete, result_summary=summarize(result))
        change = MemberChange(
            self._member(task, task_id, running), SubOperationState.COMPLETED, 100.0
        )
        self._tell_parent(task_id, running, change)

    def on_failure(self, task: Task, task_id: str, exception: BaseException | None) -> None:
        running = self._runtime.finished(task_id)
        message, code = failure_of(exception)
        self._end(task_id, self._tracker.engine.fail, error_message=message, error_code=code)
        member = self._member(task, task_id, running)
        self._tell_parent(
            task_id, running, MemberChange(member, SubOperationState.FAILED, error=message)
        )

    def on_retry(self, task: Task, request: Any, reason: Any) -> None:
        task_id = getattr(request, "id", None)
        if not task_id:
            return
        self._runtime.finished(task_id)
        retries = int(getattr(request, "retries", 0) or 0) + 1
        metadata = {
            RETRY_REASON: str(reason)[:ERROR_MESSAGE_CHARS],
            "celery_retries": retries,
            WORKER: None,  # waiting for its next attempt: no worker to watch
            PID: None,
        }
        # The next attempt runs the task from its start: the bar goes back now, when
        # the step says why, not later (maybe after a long countdown) without a word.
        state = InProgress(percentage=RETRY_PERCENTAGE, current_step=f"retry {retries} scheduled")
        self._end(task_id, self._tracker.engine.update, state=state, metadata=metadata)

    def on_revoked(
        self, task: Task | None, request: Any, terminated: bool, signum: Any, expired: bool
    ) -> None:
        task_id = getattr(request, "id", None)
        if not task_id:
            return
        self._runtime.finished(task_id)
        if expired:
            reason = "expired"
        elif terminated:
            reason = f"terminated (signal {signum})"
        else:
            reason = "revoked"
        details = {
            REVOKED: True,
            TERMINATED: bool(terminated),
            EXPIRED: bool(expired),
        }
        cancel = revoke_mutation(self._tracker.engine, reason, details, self._now())
        session = self._sessions.defer(task_id, cancel)
        # Known here, or told by its message (a member revoked before it started).
        parent_id = session.parent_id if session is not None else parent_of(request)
        if parent_id is not None and task is not None:
            member = Member(task_id, task.name, self._tasks.weight(task), 0)
            self._rollup.member_changed(
                parent_id, MemberChange(member, SubOperationState.CANCELLED)
            )

    def on_cancelled(self, task: Task, exc: TaskCancelled) -> None:
        """The task stopped on ``TaskCancelled``: the session ends Cancelled, the result REVOKED."""
        task_id = task.request.id or exc.session_id
        running = self._runtime.finished(task_id)
        # Cancelled from outside, it is already: the store refuses this, and that is all.
        self._end(task_id, self._tracker.engine.cancel, reason=exc.reason or "cancelled")
        if not getattr(task, "ignore_result", False):
            try:
                task.backend.mark_as_revoked(
                    task_id, exc.reason or "cancelled", request=task.request
                )
            except Exception:
                logger.debug("could not mark %s revoked in the result backend", task_id)
        member = self._member(task, task_id, running)
        self._tell_parent(task_id, running, MemberChange(member, SubOperationState.CANCELLED))

    def on_postrun(self, task_id: str) -> None:
        self._runtime.finished(task_id)

    def _now(self) -> datetime:
        return self._tracker.clock.now()

    def _end(self, task_id: str, method: Callable[..., Change], **arguments: Any) -> None:
        """Queue an engine function for the task's session (the store decides)."""
        self._sessions.defer(task_id, functools.partial(method, now=self._now(), **arguments))

    def _tell_parent(self, task_id: str, running: Running | None, change: MemberChange) -> None:
        """A member's end reaches its group, chord or chain, if it has one."""
        if running is not None:
            parent_id = running.parent_id
        else:
            session = self._sessions.committed(task_id)
            parent_id = session.parent_id if session is not None else None
        if parent_id is not None:
            self._rollup.member_changed(parent_id, change)

    def _member(self, task: Task, task_id: str, running: Running | None) -> Member:
        if running is not None:
            return Member.of(running)
        return Member(task_id, task.name, self._tasks.weight(task), 0)
