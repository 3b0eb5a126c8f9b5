"""``Integration``: one Celery app's progress tracking, in one process.

It holds the tracker and the parts that do the work, each with one job, and
wires them together:

* :class:`~.dispatch.Dispatcher`: sessions made as tasks are published,
  groups sealed once sent;
* :class:`~.lifecycle.TaskLifecycle`: a task's session through its run;
* :class:`~.update_state.UpdateStates`: ``update_state`` as progress, and
  its result-backend writes;
* :class:`~.liveness.Liveness`: heartbeats, and sweeps for dead workers;
* :class:`~.canvas.Rollup`: members' changes reaching their group, chord or
  chain;
* :class:`~.worker_runtime.WorkerRuntime`: the tasks running here, and the
  ticker that does their periodic chores.

The signal handlers (:mod:`.signals`) call the parts; a tracked task calls
the integration through :class:`~.task.TaskHooks`. Every entry point is
guarded: tracking never fails a ``delay()`` or a task, whatever the store or
the broker do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.config import ProgressConfig
from ..tracking import forks
from .bounded import call_within
from .canvas import Rollup
from .dispatch import Dispatcher
from .errors import TaskCancelled
from .lifecycle import TaskLifecycle
from .liveness import Liveness
from .outcomes import BackendOutcomes
from .safe_sessions import SafeSessions
from .settings import CelerySettings
from .task import TrackedTasks, hooks_of
from .task_progress import ProgressHandles, TaskProgress
from .tracker import CeleryProgressTracker
from .update_state import BackendWrites, UpdateStates
from .worker_runtime import HEARTBEATS_PER_TIMEOUT, TaskProgressEvents, WorkerRuntime

if TYPE_CHECKING:
    from celery import Celery, Task

__all__ = ["STOP_WAIT_S", "Integration", "integration_of"]

logger = logging.getLogger(__name__)

#: Longest a stopping worker process waits for its tracker to write what it
#: accepted (a flush, or a close in a pool process): a store that hangs must
#: not hold up the worker's exit. The tracker's own close gives a store that
#: refuses connections a shorter grace, and keeps what it could not write.
STOP_WAIT_S = 10.0


def integration_of(app: Celery) -> Integration | None:
    """The integration ``install(app)`` made for ``app``, if any."""
    hooks = hooks_of(app)
    return hooks if isinstance(hooks, Integration) else None


class Integration:
    """Progress tracking for one Celery app in this process (see the module's docstring)."""

    def __init__(self, app: Celery, config: ProgressConfig, settings: CelerySettings) -> None:
        self.app = app
        self.config = config
        self.settings = settings
        #: The signal receivers connected by ``install`` (for ``uninstall``).
        self.connections: list[tuple[Any, Any]] = []
        #: The app's ``GroupResult`` class before ``install`` wrapped it.
        self.group_result_class: Any = None
        outcomes = BackendOutcomes(app)
        self.tracker = CeleryProgressTracker.for_app(app, config, settings, outcomes)
        progress = self.tracker.tracker
        self.tasks = TrackedTasks(app, settings.member_weight)
        sessions = SafeSessions(progress)
        self.rollup = Rollup(sessions)
        self.liveness = Liveness(sessions, self.rollup, config.heartbeat_timeout_seconds, outcomes)
        self.task_events = TaskProgressEvents(app, settings.task_events)
        writes = BackendWrites(app, config.update_interval_s)
        self.runtime = WorkerRuntime(
            window_s=config.update_interval_s,
            heartbeat_interval_s=config.heartbeat_timeout_seconds / HEARTBEATS_PER_TIMEOUT,
            heartbeat=self.liveness.heartbeat,
            push_rollup=self.rollup.push,
            emit_progress=self.task_events.emit,
            session_percentage=self.rollup.session_percentage,
            flush_backend=writes.flush,
        )
        self.handles = ProgressHandles(progress, self.runtime)
        self.dispatcher = Dispatcher(self.tasks, sessions, self.runtime)
        self.lifecycle = TaskLifecycle(self.tasks, sessions, self.rollup, self.runtime)
        # Writes are queued: what the store refuses later comes back here.
        progress.add_refusal_listener(self.lifecycle.on_refused)
        self.update_states = UpdateStates(
            self.handles, self.runtime, writes, settings.update_state_to_backend
        )
        # What a tracked task asks (TaskHooks), answered by the parts themselves.
        self.task_returned = self.update_states.finish
        self.update_state = self.update_states.record
        # After the tracker, which registered itself: renewed after it in a child.
        forks.renew_after_fork(self)

    def task_cancelled(self, task: Task, exc: TaskCancelled) -> None:
        """The task stopped on ``TaskCancelled`` (TaskHooks): its session, result and event."""
        self.lifecycle.on_cancelled(task, exc)
        self.task_events.revoked(task.request.id or exc.session_id, task.request.hostname)

    def progress_of(self, task: Task) -> TaskProgress:
        """``self.progress`` of a tracked task (TaskHooks)."""
        return self.handles.of_task(task.name, getattr(task.request, "id", None))

    # -- life ------------------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: the parent's running tasks, dispatches and threads are not ours."""
        self.runtime.after_fork()
        self.dispatcher.after_fork()
        self.liveness.after_fork()

    def close(self) -> None:
        self.liveness.stop()
        self.runtime.stop()
        self.tracker.close()

    def close_within(self, wait_s: float = STOP_WAIT_S) -> None:
        """``close()``, waiting at most ``wait_s`` (a pool process about to exit)."""
        self._within(self.close, wait_s, "close")

    def flush_within(self, wait_s: float = STOP_WAIT_S) -> None:
        """Write what the tracker accepted, waiting at most ``wait_s`` (a worker stopping)."""
        self._within(self.tracker.flush, wait_s, "flush")

    def _within(self, step: Callable[[], None], wait_s: float, what: str) -> None:
        try:
            call_within(step, wait_s, f"progress-{what}")
        except Exception:
            logger.exception("progress tracking could not %s before the process stops", what)
