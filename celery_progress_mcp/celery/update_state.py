"""``update_state`` as progress, and its writes to the result backend.

What a state and its meta mean (:func:`translate`); understood:

* celery-progress's ``PROGRESS`` meta: ``current``, ``total``, ``percent``,
  ``description`` (and ``pending``);
* a plain meta: ``percentage`` (or ``percent``), ``step`` (or
  ``description``), ``current``/``total``, ``eta_seconds``;
* any other state (``PROGRESS`` without such keys, ``DOWNLOADING``, ...):
  recorded in the session's metadata (``celery_state``), the percentage
  left as it was.

Celery's own states (``STARTED``, ``SUCCESS``, ``FAILURE``, ``RETRY``,
``REVOKED``, ``PENDING``) are left to the lifecycle signals.

A progress state still reaches the result backend, so existing pollers keep
working, but at most once per coalescing window (:class:`BackendWrites`):
the first write of a window goes at once, the latest of the rest when the
window ends (written by the worker's ticker), and never after the task's
result. :class:`ProgressRecorder` is celery-progress's recorder, as a
one-line import change::

    # from celery_progress.backend import ProgressRecorder
    from celery_progress_mcp.celery import ProgressRecorder

    @progress_task(app)
    def work(self, items):
        recorder = ProgressRecorder(self)
        for i, item in enumerate(items, 1):
            handle(item)
            recorder.set_progress(i, len(items), description="working")

It calls ``task.update_state`` with celery-progress's ``PROGRESS`` meta, as
celery-progress does; on a tracked task that becomes a coalesced progress
update, so the same calls cost microseconds instead of a synchronous
backend write each.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.errors import ProgressError
from .errors import TaskCancelled
from .task_progress import ProgressHandles
from .worker_runtime import Running, WorkerRuntime

if TYPE_CHECKING:
    from celery import Celery, Task

__all__ = [
    "CELERY_STATES",
    "PROGRESS_STATE",
    "BackendWrites",
    "ProgressRecorder",
    "Translation",
    "UpdateStates",
    "translate",
]

logger = logging.getLogger(__name__)

#: The state celery-progress (and most code in the wild) reports progress with.
PROGRESS_STATE = "PROGRESS"
#: States that belong to Celery's lifecycle, handled by signals instead.
CELERY_STATES = frozenset(
    {"PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"}
)
#: Longest custom meta recorded as is; beyond it a truncated repr is kept.
MAX_CUSTOM_META_CHARS = 2000


class Translation(NamedTuple):
    """Arguments for ``TaskProgress.update``; ``metadata`` records a custom state.

    A named tuple, not a dataclass: one is built per ``update_state`` call,
    on the task's hot path.
    """

    percentage: float | None = None
    current: float | None = None
    total: float | None = None
    step: str | None = None
    eta_seconds: float | None = None
    metadata: dict[str, Any] | None = None


_NUMBER_TYPES = (int, float)
_isfinite = math.isfinite


def _number(value: Any) -> float | None:
    if value is None or value.__class__ is bool or not isinstance(value, _NUMBER_TYPES):
        return None
    number = float(value)
    return number if _isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def translate(state: str | None, meta: Any) -> Translation | None:
    """What ``update_state(state=state, meta=meta)`` means as progress; None for nothing."""
    if state is None or state in CELERY_STATES:
        return None
    progress = _progress_of(meta) if isinstance(meta, dict) else None
    if state == PROGRESS_STATE and progress is not None:
        return progress
    custom = {"celery_state": {"state": state, "meta": _json_safe(meta)}}
    if progress is not None:
        return Translation(
            percentage=progress.percentage,
            current=progress.current,
            total=progress.total,
            step=progress.step,
            eta_seconds=progress.eta_seconds,
            metadata=custom,
        )
    return Translation(metadata=custom)


def _progress_of(meta: dict[str, Any]) -> Translation | None:
    get = meta.get
    raw = get("percentage")
    percentage = _number(raw if raw is not None else get("percent"))
    current = _number(get("current"))
    if percentage is None and current is None:
        return None
    total = _number(get("total"))
    if percentage is not None:
        percentage = 100.0 if percentage > 100.0 else max(0.0, percentage)
    if current is not None and current < 0:
        current = None
    if total is not None and total < 0:
        total = None
    eta = _number(get("eta_seconds"))
    step = get("step")
    return Translation(
        percentage,
        current,
        total,
        _text(step if step is not None else get("description")),
        eta if eta is not None and eta >= 0 else None,
    )


def _json_safe(meta: Any) -> Any:
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError):
        return repr(meta)[:MAX_CUSTOM_META_CHARS]
    if len(text) > MAX_CUSTOM_META_CHARS:
        return text[:MAX_CUSTOM_META_CHARS]
    return meta


class ProgressRecorder:
    """``set_progress(current, total, description)`` and ``increment_progress(by, description)``."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.current: float = 0
        self.total: float = 0

    def set_progress(
        self, current: float, total: float, description: str = ""
    ) -> tuple[str, dict[str, Any]]:
        """Report ``current`` of ``total``; returns the state and meta, as celery-progress."""
        self.current = current
        self.total = total
        percent = 0.0
        if total > 0:
            percent = float(round(Decimal(current) / Decimal(total) * Decimal(100), 2))
        meta = {
            "pending": False,
            "current": current,
            "total": total,
            "percent": percent,
            "description": description,
        }
        self.task.update_state(state=PROGRESS_STATE, meta=meta)
        return PROGRESS_STATE, meta

    def increment_progress(
        self, by: float = 1, description: str = ""
    ) -> tuple[str, dict[str, Any]]:
        """Advance by ``by`` towards the total of the last ``set_progress``."""
        return self.set_progress(self.current + by, self.total, description)


class BackendWrites:
    """A running task's progress states, written to the result backend once per window."""

    def __init__(self, app: Celery, window_s: float) -> None:
        self._app = app
        self._window_s = window_s

    def defer(
        self, task: Task, task_id: str, state: str, meta: Any, request: Any, running: Running | None
    ) -> None:
        """Write a progress state to the result backend at most once per window.

        The first write of a window goes at once; later ones wait and only
        the latest is written, by the worker's ticker (:meth:`flush`) when the
        window ends. A task not running here is written at once.
        """
        if running is None:
            task.backend.store_result(task_id, meta, state, request=request)
            return
        now_s = time.monotonic()
        with running.backend_lock:
            if running.backend_closed:
                return
            if now_s - running.backend_written_s < self._window_s:
                running.backend_pending = (state, meta, request)
                return
            running.backend_pending = None
            running.backend_written_s = now_s
            task.backend.store_result(task_id, meta, state, request=request)

    def flush(self, running: Running) -> None:
        """Write the latest state held back, once its window has ended."""
        with running.backend_lock:
            pending = running.backend_pending
            if pending is None or running.backend_closed:
                return
            if time.monotonic() - running.backend_written_s < self._window_s:
                return
            running.backend_pending = None
            running.backend_written_s = time.monotonic()
            state, meta, request = pending
            task = self._app.tasks.get(running.task_name)
            if task is not None:
                task.backend.store_result(running.session_id, meta, state, request=request)

    def close(self, running: Running) -> None:
        """The task returned: no progress state may overwrite its result from now on."""
        with running.backend_lock:  # waits for a write in flight
            running.backend_closed = True
            running.backend_pending = None


class UpdateStates:
    """``update_state`` recorded as progress; the result backend written as configured."""

    def __init__(
        self,
        handles: ProgressHandles,
        runtime: WorkerRuntime,
        writes: BackendWrites,
        to_backend: bool | str,
    ) -> None:
        """``to_backend``: the ``progress_update_state_to_backend`` setting."""
        self._handles = handles
        self._runtime = runtime
        self._writes = writes
        self._to_backend = to_backend

    def record(
        self,
        task: Task,
        request: Any,
        task_id: str,
        state: str | None,
        meta: Any,
        options: Mapping[str, Any],
    ) -> bool:
        """Record the call (``request``: the task's own) as progress.

        True if Celery's own backend write is due now: ``True`` (the default
        setting) writes the task's own latest progress
        once per coalescing window and anything else at once; ``"always"``
        writes every call at once as Celery does; ``False`` never.
        """
        own = task_id == request.id
        translation = translate(state, meta)
        if translation is not None:
            self._as_progress(task, task_id, translation, own=own)
        mode = self._to_backend
        if mode is False:
            return False
        if mode is True and own and state == PROGRESS_STATE and not options:
            self._writes.defer(task, task_id, state, meta, request, self._runtime.get(task_id))
            return False
        return True

    def _as_progress(
        self, task: Task, task_id: str, translation: Translation, *, own: bool
    ) -> None:
        """Cancellation is raised only into the task itself."""
        handles = self._handles
        handle = handles.of_task(task.name, task_id) if own else handles.of_session(task_id)
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

    def finish(self, task_id: str) -> None:
        """The task returned: close its way to the result backend before its result."""
        running = self._runtime.get(task_id)
        if running is not None:
            self._writes.close(running)
