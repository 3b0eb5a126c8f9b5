"""What a worker process knows of the tracked tasks running in it.

One ``Running`` record per task in progress here. A ticker thread, started
with the first task of the process, does the periodic work:

* heartbeats: every running session (and its parent) is marked alive every
  ``heartbeat_timeout_seconds / HEARTBEATS_PER_TIMEOUT``, so the liveness
  sweep can tell a silent task from a dead worker; a heartbeat refused
  because the session ended elsewhere (cancelled) tells the task so;
* rollup: a member's latest percentage is written into its parent's
  sub-operation at most once per coalescing window (the task's own updates
  are coalesced by the tracker; this is the parent's share);
* Celery events: an event per window for tasks whose progress moved, when
  the worker sends task events (``-E``), so Flower shows the task STARTED
  with its progress (:class:`TaskProgressEvents`).

The chores themselves belong to the integration's other parts (liveness,
canvas rollup, result-backend writes); the runtime only says when.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.utils.saferepr import saferepr

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "HEARTBEATS_PER_TIMEOUT",
    "NOTHING_REPORTED",
    "RESULT_REPR_CHARS",
    "TASK_PROGRESS_EVENT",
    "TASK_REVOKED_EVENT",
    "Reported",
    "Running",
    "TaskProgressEvents",
    "WorkerRuntime",
]

logger = logging.getLogger(__name__)

#: Heartbeats sent per ``heartbeat_timeout_seconds``: missing a few is no death.
HEARTBEATS_PER_TIMEOUT = 4
#: The ticker's shortest period, whatever the coalescing window.
MIN_TICK_S = 0.05
#: Celery's event type for a task's progress. Celery's event state (Flower's
#: model of a task) turns an event ``task-<name>`` it does not know into the
#: state ``<NAME>`` and ranks a state it does not know above STARTED and
#: REVOKED: after a ``task-progress`` event, a ``task-revoked`` one was only
#: merged in, and a cancelled task stayed PROGRESS for good. This event's state
#: is STARTED, so Celery's ``task-succeeded``, ``-failed`` and ``-revoked``
#: replace it. It is not Celery's own ``task-started``, which sets the task's
#: start time and which Flower's Prometheus metrics count as the task leaving
#: the prefetch queue: that one Celery sends, once.
TASK_PROGRESS_EVENT = "task-STARTED"
#: Celery's event type for a revoked task; sent for a task that stopped on ``TaskCancelled``.
TASK_REVOKED_EVENT = "task-revoked"
#: Longest progress text in the event's ``result`` field, as Celery's ``resultrepr_maxsize``.
RESULT_REPR_CHARS = 1024
#: What a task reported, as its progress event carries it: percent, step, current, total.
Reported = tuple[float | None, str | None, float | None, float | None]
#: Nothing reported yet: no progress event.
NOTHING_REPORTED: Reported = (None, None, None, None)


@dataclass(slots=True)
class Running:
    """A tracked task running in this process."""

    session_id: str
    task_name: str
    hostname: str | None = None
    #: The group, chord or chain session this task is a member of.
    parent_id: str | None = None
    #: A chain's member: the id of the chain's next task, which this process
    #: publishes once this one returns (see :mod:`.dispatch`).
    next_link: str | None = None
    weight: float = 1.0
    index: int | None = None
    #: Latest percentage reported by the task; the ticker rolls it up.
    percentage: float | None = None
    #: The task reports through sub-operations: its percentage is the session's rollup.
    from_sub_operations: bool = False
    #: Something was reported since the ticker last looked.
    dirty: bool = False
    #: Latest step and counts, for Celery's progress event.
    step: str | None = None
    current: float | None = None
    total: float | None = None
    pushed_percentage: float | None = None
    #: What the last progress event carried.
    evented: Reported = NOTHING_REPORTED
    #: Set when the session was found cancelled from outside.
    cancelled: bool = False
    cancel_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: A result-backend write of ``update_state`` waiting for the window to end:
    #: (state, meta, request); see :class:`.update_state.BackendWrites`.
    backend_pending: tuple[str, Any, Any] | None = None
    backend_written_s: float = float("-inf")
    #: Set when the task returned: no progress state may overwrite its result,
    #: in the result backend or (by a late progress event) in Flower.
    backend_closed: bool = False
    backend_lock: threading.Lock = field(default_factory=threading.Lock)


class WorkerRuntime:
    """The tracked tasks running in this process, and the ticker thread."""

    def __init__(
        self,
        *,
        window_s: float,
        heartbeat_interval_s: float,
        heartbeat: Callable[[Running], None],
        push_rollup: Callable[[Running, float], None],
        emit_progress: Callable[[Running], None] | None,
        session_percentage: Callable[[Running], float | None],
        flush_backend: Callable[[Running], None],
    ) -> None:
        self._window_s = window_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._heartbeat = heartbeat
        self._push_rollup = push_rollup
        self._emit_progress = emit_progress
        self._session_percentage = session_percentage
        self._flush_backend = flush_backend
        self._lock = threading.Lock()
        self.running: dict[str, Running] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopped = False

    def started(self, running: Running) -> None:
        with self._lock:
            self.running[running.session_id] = running
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="celery-progress-worker", daemon=True
                )
                self._thread.start()

    def get(self, session_id: str) -> Running | None:
        return self.running.get(session_id)

    def finished(self, session_id: str) -> Running | None:
        with self._lock:
            return self.running.pop(session_id, None)

    def _run(self) -> None:
        tick_s = max(MIN_TICK_S, min(self._window_s or MIN_TICK_S, self._heartbeat_interval_s))
        next_heartbeat_s = time.monotonic() + self._heartbeat_interval_s
        while not self._stopped:
            self._wake.wait(tick_s)
            self._wake.clear()
            if self._stopped:
                return
            with self._lock:
                running = list(self.running.values())
            now_s = time.monotonic()
            for task in running:
                if task.backend_pending is not None:
                    self._safely(self._flush_backend, task)
                self._roll_up(task)
            if now_s >= next_heartbeat_s:
                next_heartbeat_s = now_s + self._heartbeat_interval_s
                for task in running:
                    self._safely(self._heartbeat, task)

    def _roll_up(self, task: Running) -> None:
        if not task.dirty:
            return
        task.dirty = False
        if task.from_sub_operations:
            try:
                task.percentage = self._session_percentage(task)
            except Exception:
                logger.debug("progress of %s not readable", task.session_id, exc_info=True)
        percentage = task.percentage
        if (
            percentage is not None
            and task.parent_id is not None
            and percentage != task.pushed_percentage
        ):
            task.pushed_percentage = percentage
            self._safely(self._push_rollup, task, percentage)
        reported = (percentage, task.step, task.current, task.total)
        if self._emit_progress is not None and reported not in (task.evented, NOTHING_REPORTED):
            task.evented = reported
            self._safely(self._emit_progress, task)

    def _safely(self, function: Callable[..., None], *arguments: Any) -> None:
        try:
            function(*arguments)
        except Exception:
            logger.debug("progress worker chore failed", exc_info=True)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def after_fork(self) -> None:
        """In a forked child: the parent's tasks and ticker are not this process's."""
        self._lock = threading.Lock()
        self.running = {}
        self._thread = None
        self._wake = threading.Event()


class TaskProgressEvents:
    """Celery's task events for tracked tasks, so Flower (and ``celery events``) show them right.

    * Progress: a :data:`TASK_PROGRESS_EVENT` (state STARTED) from the worker's
      ticker, at most once per coalescing window per task whose progress
      moved. Its fields ``percent``, ``step``, ``current`` and ``total`` are
      kept in Celery's event state; ``result`` carries them as text, the one
      field of a running task that Flower shows (task page, task list, API),
      replaced by the return value when the task succeeds.
    * Cooperative cancellation: a ``task-revoked`` event when the task stops on
      ``TaskCancelled``. The task ends with Celery's ``Ignore``, for which
      Celery sends no event; a task revoked with ``terminate`` gets Celery's own.

    Sent only where the worker sends task events (``celery worker -E``), or
    as ``app.conf.progress_task_events`` says.
    """

    def __init__(self, app: Celery, enabled: bool | None) -> None:
        """``enabled`` None follows the worker's ``-E``."""
        self._app = app
        self._enabled = enabled
        #: Whether this worker sends task events (``-E``), learnt at worker start.
        self.worker_sends_task_events = False

    def emit(self, running: Running) -> None:
        """Send one progress event with the task's latest progress, unless it returned."""
        if not self._sending():
            return
        progress = {
            "percent": running.percentage,
            "step": running.step,
            "current": running.current,
            "total": running.total,
        }
        shown = {key: value for key, value in progress.items() if value is not None}
        # Under the lock the task's return takes: sent later, the event's result
        # would be merged into the task's end in Flower.
        with running.backend_lock:
            if running.backend_closed:
                return
            self._send(
                TASK_PROGRESS_EVENT,
                running.hostname,
                uuid=running.session_id,
                name=running.task_name,
                result=saferepr(shown, RESULT_REPR_CHARS),
                **progress,
            )

    def revoked(self, task_id: str, hostname: str | None) -> None:
        """Send ``task-revoked`` for a task that stopped on ``TaskCancelled``; never raises."""
        if not self._sending():
            return
        try:
            self._send(
                TASK_REVOKED_EVENT,
                hostname,
                uuid=task_id,
                terminated=False,
                signum=None,
                expired=False,
            )
        except Exception:
            logger.warning("the task-revoked event of %s was not sent", task_id, exc_info=True)

    def _sending(self) -> bool:
        enabled = self._enabled
        return self.worker_sends_task_events if enabled is None else enabled

    def _send(self, event_type: str, hostname: str | None, **fields: Any) -> None:
        with self._app.events.default_dispatcher(hostname=hostname) as dispatcher:
            dispatcher.send(event_type, **fields)
