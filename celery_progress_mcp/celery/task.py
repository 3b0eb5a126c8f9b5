"""``ProgressTask`` and ``@progress_task``: tracked Celery tasks.

::

    tracker = install(app)

    @progress_task(app)
    def import_rows(self, path):
        for row in self.progress.iter(read(path), step="importing"):
            store(row)

Every dispatch of a tracked task creates its session (id = task id) before
``delay()`` returns; the lifecycle follows from Celery's signals, and
``self.progress`` reports from inside. ``self.update_state(...)`` keeps
working and is understood as progress too.

A task finds the integration ``install(app)`` attached to its app through
:class:`TaskHooks`, what a task asks of it; the integration's parts learn
which tasks are tracked, and what to record of them, from
:class:`TrackedTasks`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from celery import Celery, Task
from celery.exceptions import Ignore

from .errors import TaskCancelled
from .metadata_keys import ACKS_LATE, ETA, KIND, KIND_TASK, TASK
from .task_progress import TaskProgress, detached

__all__ = [
    "ProgressTask",
    "TaskHooks",
    "TrackedTasks",
    "attach_hooks",
    "detach_hooks",
    "hooks_of",
    "progress_task",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Attribute of the Celery app that holds its integration (its :class:`TaskHooks`).
APP_ATTRIBUTE = "_celery_progress_integration"

_warned_uninstalled: set[str] = set()
_warn_lock = threading.Lock()


class TaskHooks(Protocol):
    """What a tracked task asks of the integration installed on its app."""

    def progress_of(self, task: Task) -> TaskProgress:
        """``self.progress``: the running task's handle."""
        ...

    def task_cancelled(self, task: Task, exc: TaskCancelled) -> None:
        """The task stopped on ``TaskCancelled``."""
        ...

    def task_returned(self, task_id: str) -> None:
        """The task's function returned or raised: its result comes next."""
        ...

    def update_state(
        self,
        task: Task,
        request: Any,
        task_id: str,
        state: str | None,
        meta: Any,
        options: Mapping[str, Any],
    ) -> bool:
        """Record ``update_state`` (``request``: the task's own) as progress.

        True if Celery's own write is still due now.
        """
        ...


def hooks_of(app: Celery) -> TaskHooks | None:
    """The integration installed on ``app``, if any."""
    hooks: TaskHooks | None = getattr(app, APP_ATTRIBUTE, None)
    return hooks


def attach_hooks(app: Celery, hooks: TaskHooks) -> None:
    setattr(app, APP_ATTRIBUTE, hooks)


def detach_hooks(app: Celery) -> None:
    if hasattr(app, APP_ATTRIBUTE):
        delattr(app, APP_ATTRIBUTE)


class ProgressTask(Task):  # type: ignore[misc]
    """Base class of tracked tasks (use ``@progress_task(app)`` or ``base=ProgressTask``)."""

    #: False opts a task of this class out of tracking.
    progress_tracked: ClassVar[bool] = True
    #: Sub-operation weight of this task as a member of a group, chord or chain.
    progress_weight: ClassVar[float | None] = None

    @property
    def progress(self) -> TaskProgress:
        """The running task's progress handle (session id = task id)."""
        hooks = hooks_of(self.app)
        if hooks is None:
            _warn_uninstalled(self.app)
            return detached()
        return hooks.progress_of(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TaskCancelled as exc:
            hooks = hooks_of(self.app)
            if hooks is not None:
                hooks.task_cancelled(self, exc)
            raise Ignore(str(exc)) from exc
        finally:
            hooks = hooks_of(self.app)
            if hooks is not None and self.request.id:
                hooks.task_returned(self.request.id)

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
        **kwargs: Any,
    ) -> None:
        """Celery's ``update_state``, also recorded as progress.

        ``PROGRESS`` with celery-progress's meta (``current``, ``total``,
        ``percent``, ``description``) or a plain one (``percentage``,
        ``step``) becomes an in-progress update; other custom states are
        recorded in the session's metadata. The result backend still gets
        the state (``app.conf.progress_update_state_to_backend``: ``True``,
        the default, writes the latest progress once per coalescing window
        and anything else at once; ``"always"`` writes every call at once
        as Celery does; ``False`` never).
        """
        hooks = hooks_of(self.app)
        request = self.request
        target = task_id or request.id
        if (
            hooks is None
            or not target
            or hooks.update_state(self, request, target, state, meta, kwargs)
        ):
            super().update_state(task_id=task_id, state=state, meta=meta, **kwargs)


def progress_task(app: Celery, **task_options: Any) -> Callable[[F], Any]:
    """Register a bound, tracked task: ``@progress_task(app, name=..., max_retries=...)``.

    ``base`` may name a subclass of :class:`ProgressTask`; any other base is
    combined with it.
    """
    base = task_options.pop("base", None) or ProgressTask
    if not issubclass(base, ProgressTask):
        base = type(f"Progress{base.__name__}", (ProgressTask, base), {})
    task_options.pop("bind", None)

    def decorate(function: F) -> Any:
        return app.task(bind=True, base=base, **task_options)(function)

    return decorate


class TrackedTasks:
    """Which of an app's tasks are tracked, and what their sessions record of them."""

    def __init__(self, app: Celery, member_weight: float) -> None:
        """``member_weight``: a member's weight where its task sets none."""
        self._app = app
        self._member_weight = member_weight

    def tracked(self, task: object) -> bool:
        """Whether ``task`` is one of this app's tracked tasks."""
        return (
            isinstance(task, ProgressTask)
            and task.progress_tracked
            and getattr(task, "_app", None) is self._app
        )

    def tracked_named(self, name: object) -> Task | None:
        """The tracked task registered under ``name``, if there is one."""
        task = self.named(name)
        return task if task is not None and self.tracked(task) else None

    def named(self, name: object) -> Task | None:
        """Any task registered under ``name``."""
        if not isinstance(name, str):
            return None
        task: Task | None = self._app.tasks.get(name)
        return task

    def weight(self, task: object | None) -> float:
        """The task's ``progress_weight`` as a member, else the default weight."""
        weight = getattr(task, "progress_weight", None)
        if isinstance(weight, int | float) and weight > 0:
            return float(weight)
        return self._member_weight

    def metadata(self, task: Task, headers: Mapping[str, Any]) -> dict[str, Any]:
        """What a task's new session records of it (and of its message's ``headers``)."""
        metadata: dict[str, Any] = {
            KIND: KIND_TASK,
            TASK: task.name,
            ACKS_LATE: bool(getattr(task, "acks_late", False)),
        }
        eta = headers.get("eta")
        if eta:
            metadata[ETA] = str(eta)
        return metadata


def _warn_uninstalled(app: Celery) -> None:
    name = str(getattr(app, "main", None) or "celery")
    with _warn_lock:
        if name in _warned_uninstalled:
            return
        _warned_uninstalled.add(name)
    logger.warning(
        "self.progress used but install(app) was not called for app %r: progress is not tracked",
        name,
    )
