"""What the parts of an :class:`~.integration.Integration` share.

The integration is assembled from mixins, one per concern (dispatch,
lifecycle, result-backend writes); this base holds the state they share and
the small helpers they all use: which tasks are tracked, creating and
changing sessions without ever raising into Celery, and a member's changes
reaching its group, chord or chain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.config import ProgressConfig
from ..core.errors import InvalidProgress, InvalidTransition, ProgressError, SessionNotFound
from ..core.models import ProgressSession, SubOperationState
from ..core.states import SessionStatus
from . import keys
from .canvas import Dispatches, Member, MemberChange, member_mutation
from .handle import TaskProgress
from .runtime import Running, WorkerRuntime
from .settings import CelerySettings
from .tracker import CeleryProgressTracker

if TYPE_CHECKING:
    from celery import Celery, Task

logger = logging.getLogger(__name__)

__all__ = ["IntegrationBase", "detached_handle"]


class IntegrationBase:
    """The state and helpers shared by the integration's mixins."""

    app: Celery
    config: ProgressConfig
    settings: CelerySettings
    tracker: CeleryProgressTracker
    runtime: WorkerRuntime
    dispatches: Dispatches

    def tracked(self, task: Any) -> bool:
        from .task import ProgressTask

        return (
            isinstance(task, ProgressTask)
            and task.progress_tracked
            and getattr(task, "_app", None) is self.app
        )

    def tracked_name(self, name: Any) -> Task | None:
        if not isinstance(name, str):
            return None
        task = self.app.tasks.get(name)
        return task if task is not None and self.tracked(task) else None

    def _task_metadata(self, task: Any, headers: Mapping[str, Any]) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            keys.KIND: keys.KIND_TASK,
            keys.TASK: task.name,
            keys.ACKS_LATE: bool(getattr(task, "acks_late", False)),
        }
        eta = headers.get("eta")
        if eta:
            metadata[keys.ETA] = str(eta)
        return metadata

    def _create(
        self,
        session_id: str,
        name: str,
        metadata: dict[str, Any],
        parent_id: str | None,
    ) -> bool:
        try:
            self.tracker.create_session(name, metadata, session_id=session_id, parent_id=parent_id)
        except InvalidProgress as exc:
            if "already exists" not in str(exc):
                logger.warning("progress session %s not created: %s", session_id, exc)
            return False
        except ProgressError as exc:
            logger.warning("progress session %s not created: %s", session_id, exc)
            return False
        return True

    def _weight(self, task: Any) -> float:
        weight = getattr(task, "progress_weight", None)
        if isinstance(weight, int | float) and weight > 0:
            return float(weight)
        return self.settings.member_weight

    def _mutate(self, session_id: str, mutation: Any) -> ProgressSession | None:
        try:
            return self.tracker.apply_mutation(session_id, mutation)
        except (InvalidTransition, SessionNotFound) as exc:
            logger.debug("progress change of %s refused: %s", session_id, exc)
        except ProgressError as exc:
            logger.warning("progress change of %s failed: %s", session_id, exc)
        return None

    def member_changed(self, parent_id: str, change: MemberChange) -> None:
        """Record a member's change in its parent; a parent that ended tells its own parent."""
        now = self.tracker.clock.now()
        parent = self._mutate(parent_id, member_mutation(self.tracker.engine, change, now))
        if parent is None or parent.parent_id is None:
            return
        if parent.state.status in (SessionStatus.COMPLETED, SessionStatus.FAILED):
            state = (
                SubOperationState.COMPLETED
                if parent.state.status == SessionStatus.COMPLETED
                else SubOperationState.FAILED
            )
            error = getattr(parent.state, "error_message", None)
        elif parent.state.status == SessionStatus.CANCELLED:
            state, error = SubOperationState.CANCELLED, None
        else:
            return
        member = Member(parent.id, parent.operation_id, 1.0, 0)
        self.member_changed(parent.parent_id, MemberChange(member, state, 100.0, error))

    def _member(self, running: Running) -> Member:
        return Member(running.session_id, running.task_name, running.weight, running.index or 0)

    def handle_for(self, task: Task, task_id: str | None = None) -> TaskProgress:
        """``self.progress``: the running task's handle (made on first use)."""
        if task_id is None:
            task_id = getattr(task.request, "id", None)
        running = self.runtime.get(task_id) if task_id else None
        if running is None:
            if task_id is None:
                return detached_handle(self.tracker)
            running = Running(session_id=task_id, task_name=task.name)
        handle: TaskProgress | None = running.extra.get("handle")
        if handle is None:
            handle = running.extra["handle"] = TaskProgress(self.tracker, str(task_id), running)
        return handle

    def _parent_of(self, task_id: str, running: Running | None) -> str | None:
        if running is not None:
            return running.parent_id
        session = self._committed(task_id)
        return session.parent_id if session is not None else None

    def _member_of(self, task: Task, task_id: str, running: Running | None) -> Member:
        if running is not None:
            return self._member(running)
        return Member(task_id, task.name, self._weight(task), 0)

    def _committed(self, session_id: str) -> ProgressSession | None:
        try:
            return self.tracker.store.get(session_id, with_history=False)
        except ProgressError as exc:
            logger.debug("progress session %s not readable: %s", session_id, exc)
            return None

    def _quietly(self, method: Any, *arguments: Any) -> None:
        try:
            method(*arguments)
        except (InvalidTransition, SessionNotFound) as exc:
            logger.debug("progress call refused: %s", exc)
        except Exception:
            logger.exception("progress tracking failed (the task goes on)")


def detached_handle(tracker: CeleryProgressTracker | None = None) -> TaskProgress:
    """A handle for a task called directly (no request id): reports nowhere."""
    return TaskProgress(None, "detached")
