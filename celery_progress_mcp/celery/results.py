"""``update_state`` as progress, and its writes to the result backend.

A progress state still reaches the result backend, so existing pollers keep
working, but at most once per coalescing window: the first write of a
window goes at once, the latest of the rest when the window ends (written
by the worker's ticker), and never after the task's result.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import ProgressError
from .base import IntegrationBase
from .errors import TaskCancelled
from .handle import TaskProgress
from .runtime import Running
from .translate import Translation

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger(__name__)

__all__ = ["ResultWritesMixin"]


class ResultWritesMixin(IntegrationBase):
    """``update_state`` recorded as progress; coalesced result-backend writes."""

    def record_update_state(
        self, task: Task, task_id: str, translation: Translation, *, own: bool
    ) -> None:
        """``update_state`` as progress; cancellation is raised only into the task itself."""
        handle = self.handle_for(task, task_id) if own else TaskProgress(self.tracker, task_id)
        try:
            handle.update(
                translation.percentage,
                current=translation.current,
                total=translation.total,
                step=translation.step,
                eta_seconds=translation.eta_seconds,
                **(translation.metadata or {}),
            )
        except TaskCancelled:
            if own:
                raise
        except ProgressError as exc:
            logger.warning("update_state of %s not recorded as progress: %s", task_id, exc)

    def defer_backend_write(
        self, task: Task, task_id: str, state: str, meta: Any, request: Any
    ) -> None:
        """Write a progress state to the result backend at most once per window.

        The first write of a window goes at once; later ones wait and only
        the latest is written, by the worker's ticker when the window ends.
        The task's final result is never overwritten: ``finish_backend_writes``
        closes the way when the task returns, before Celery stores its result.
        """
        running = self.runtime.get(task_id)
        if running is None:
            task.backend.store_result(task_id, meta, state, request=request)
            return
        now_s = time.monotonic()
        with running.backend_lock:
            if running.backend_closed:
                return
            if now_s - running.backend_written_s < self.config.update_interval_s:
                running.backend_pending = (state, meta, request)
                return
            running.backend_pending = None
            running.backend_written_s = now_s
            task.backend.store_result(task_id, meta, state, request=request)

    def _flush_backend(self, running: Running) -> None:
        with running.backend_lock:
            pending = running.backend_pending
            if pending is None or running.backend_closed:
                return
            if time.monotonic() - running.backend_written_s < self.config.update_interval_s:
                return
            running.backend_pending = None
            running.backend_written_s = time.monotonic()
            state, meta, request = pending
            task = self.app.tasks.get(running.task_name)
            if task is not None:
                task.backend.store_result(running.session_id, meta, state, request=request)

    def finish_backend_writes(self, task_id: str) -> None:
        running = self.runtime.get(task_id)
        if running is None:
            return
        with running.backend_lock:  # waits for a write in flight
            running.backend_closed = True
            running.backend_pending = None
