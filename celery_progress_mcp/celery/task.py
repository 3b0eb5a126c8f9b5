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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from celery import Celery, Task
from celery.exceptions import Ignore

from .errors import TaskCancelled
from .handle import TaskProgress
from .integration import integration_of
from .translate import PROGRESS_STATE, translate

__all__ = ["ProgressTask", "progress_task"]

F = TypeVar("F", bound=Callable[..., Any])

_warned_uninstalled: set[str] = set()
_warn_lock = threading.Lock()


class ProgressTask(Task):  # type: ignore[misc]
    """Base class of tracked tasks (use ``@progress_task(app)`` or ``base=ProgressTask``)."""

    #: False opts a task of this class out of tracking.
    progress_tracked: ClassVar[bool] = True
    #: Sub-operation weight of this task as a member of a group, chord or chain.
    progress_weight: ClassVar[float | None] = None

    @property
    def progress(self) -> TaskProgress:
        """The running task's progress handle (session id = task id)."""
        integration = integration_of(self.app)
        if integration is None:
            _warn_uninstalled(self.app)
            from .base import detached_handle

            return detached_handle()
        return integration.handle_for(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TaskCancelled as exc:
            integration = integration_of(self.app)
            if integration is not None:
                integration.on_cancelled(self, exc)
            raise Ignore(str(exc)) from exc
        finally:
            integration = integration_of(self.app)
            if integration is not None and self.request.id:
                integration.finish_backend_writes(self.request.id)

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
        integration = integration_of(self.app)
        request = self.request
        target = task_id or request.id
        if integration is None or not target:
            super().update_state(task_id=task_id, state=state, meta=meta, **kwargs)
            return
        own = target == request.id
        translation = translate(state, meta)
        if translation is not None:
            integration.record_update_state(self, target, translation, own=own)
        mode = integration.settings.update_state_to_backend
        if mode is False:
            return
        if mode is True and own and state == PROGRESS_STATE and not kwargs:
            integration.defer_backend_write(self, target, state, meta, request)
            return
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


def _warn_uninstalled(app: Celery) -> None:
    import logging

    name = str(getattr(app, "main", None) or "celery")
    with _warn_lock:
        if name in _warned_uninstalled:
            return
        _warned_uninstalled.add(name)
    logging.getLogger(__name__).warning(
        "self.progress used but install(app) was not called for app %r: progress is not tracked",
        name,
    )
