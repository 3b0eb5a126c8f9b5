"""The lifecycle of a task's session, from Celery's signals in the worker.

``task_prerun`` starts it (or continues it: a retry's next attempt, a
redelivered message), ``task_success``/``task_failure``/``task_revoked``
end it, ``task_retry`` records the attempt; each also tells the task's
group, chord or chain (:class:`.canvas.Rollup`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import reprlib
from typing import TYPE_CHECKING, Any

from ..core.errors import ProgressError
from ..core.models import ProgressSession, SubOperationState
from ..core.states import Cancelled, InProgress, Paused, SessionStatus
from .canvas import Member, MemberChange, Rollup
from .dispatch import dispatched_at
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
    "TaskLifecycle",
    "failure_of",
    "summarize",
]

#: Longest result summary recorded on completion.
RESULT_SUMMARY_CHARS = 200
#: Longest error message recorded on failure.
ERROR_MESSAGE_CHARS = 1000

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
        tracker = self._tracker
        sessions = self._sessions
        session = sessions.committed(task_id)
        group_id = getattr(request, "group", None)
        group_index = getattr(request, "group_index", None)
        parent_id = session.parent_id if session is not None else None
        if session is None:
            if group_id and group_index is not None:
                parent_id = group_id
            metadata = self._tasks.metadata(task, {})
            if group_index is not None:
                metadata[GROUP_INDEX] = group_index
            sessions.create(task_id, task.name, metadata, parent_id, dispatched_at(request))
        attempt = int(getattr(request, "retries", 0) or 0) + 1
        metadata = {
            WORKER: getattr(request, "hostname", None),
            PID: os.getpid(),
            ATTEMPT: attempt,
        }
        running = Running(
            session_id=task_id,
            task_name=task.name,
            hostname=getattr(request, "hostname", None),
            parent_id=parent_id,
            weight=self._tasks.weight(task),
            index=group_index if isinstance(group_index, int) else None,
        )
        state: Any = InProgress(percentage=0.0)
        if session is not None:
            current = session.state
            if isinstance(current, Cancelled):
                running.cancelled = True  # cancelled while queued: stop at the first update
                running.cancel_reason = current.reason
                state = None
            elif isinstance(current, InProgress | Paused):
                if session.metadata.get(ATTEMPT) == attempt:
                    # A redelivered message (acks_late): the session continues.
                    metadata[REDELIVERED] = True
                    percentage = session.percentage
                    state = InProgress(percentage=None if session.sub_operations else percentage)
                    if isinstance(current, Paused):
                        sessions.call(tracker.resume_session, task_id)
                    running.percentage = percentage
            elif session.state.status not in (SessionStatus.INITIALIZING,):
                state = None  # finished elsewhere (swept, timed out): nothing to resume
        if state is not None:
            sessions.call(tracker.update_progress, task_id, state, (), metadata)
        self._runtime.started(running)
        if parent_id is not None:
            change = MemberChange(Member.of(running), SubOperationState.ACTIVE)
            self._rollup.member_changed(parent_id, change)

    def on_success(self, task: Task, result: Any) -> None:
        task_id = task.request.id
        if not task_id:
            return
        running = self._runtime.finished(task_id)
        self._sessions.call(self._tracker.complete_session, task_id, summarize(result))
        change = MemberChange(
            self._member(task, task_id, running), SubOperationState.COMPLETED, 100.0
        )
        self._tell_parent(task_id, running, change)

    def on_failure(self, task: Task, task_id: str, exception: BaseException | None) -> None:
        running = self._runtime.finished(task_id)
        message, code = failure_of(exception)
        self._sessions.call(self._tracker.fail_session, task_id, message, code)
        member = self._member(task, task_id, running)
        self._tell_parent(
            task_id, running, MemberChange(member, SubOperationState.FAILED, error=message)
        )

    def on_retry(self, task: Task, request: Any, reason: Any) -> None:
        task_id = getattr(request, "id", None)
        if not task_id:
            return
        running = self._runtime.finished(task_id)
        retries = int(getattr(request, "retries", 0) or 0) + 1
        metadata = {
            RETRY_REASON: str(reason)[:ERROR_MESSAGE_CHARS],
            "celery_retries": retries,
            WORKER: None,  # waiting for its next attempt: no worker to watch
            PID: None,
        }
        percentage = running.percentage if running is not None else None
        state = InProgress(percentage=percentage, current_step=f"retry {retries} scheduled")
        self._sessions.call(self._tracker.update_progress, task_id, state, (), metadata)

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
        engine = self._tracker.engine
        now = self._tracker.clock.now()
        details = {
            REVOKED: True,
            TERMINATED: bool(terminated),
            EXPIRED: bool(expired),
        }

        def cancel(session: ProgressSession) -> Any:
            marked = session.replace(metadata={**session.metadata, **details})
            return engine.cancel(marked, reason, now=now)

        session = self._sessions.mutate(task_id, cancel)
        parent_id = session.parent_id if session is not None else None
        if parent_id is None and session is None:
            group_id = getattr(request, "group", None)
            if group_id and getattr(request, "group_index", None) is not None:
                parent_id = group_id  # a member revoked before it started
        if parent_id is not None and task is not None:
            member = Member(task_id, task.name, self._tasks.weight(task), 0)
            self._rollup.member_changed(
                parent_id, MemberChange(member, SubOperationState.CANCELLED)
            )

    def on_cancelled(self, task: Task, exc: TaskCancelled) -> None:
        """The task stopped on ``TaskCancelled``: the session ends Cancelled, the result REVOKED."""
        task_id = task.request.id or exc.session_id
        running = self._runtime.finished(task_id)
        with contextlib.suppress(ProgressError):  # cancelled from outside: it is already
            self._tracker.cancel_session(task_id, exc.reason or "cancelled")
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
