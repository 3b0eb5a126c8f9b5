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

import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bus.base import EventBus
from ..bus.kombu import KombuBus
from ..bus.local import LocalBus
from ..core.config import ProgressConfig
from ..store.base import Store
from ..store.memory import MemoryStore
from .canvas import Rollup
from .dispatch import Dispatcher
from .errors import TaskCancelled
from .lifecycle import TaskLifecycle
from .liveness import Liveness
from .safe_sessions import SafeSessions
from .settings import CelerySettings
from .task import TrackedTasks, hooks_of
from .task_progress import ProgressHandles, TaskProgress
from .tracker import CeleryProgressTracker
from .update_state import BackendWrites, UpdateStates
from .worker_runtime import HEARTBEATS_PER_TIMEOUT, TaskProgressEvents, WorkerRuntime

if TYPE_CHECKING:
    from celery import Celery, Task

__all__ = ["Integration", "exchange_for", "integration_of"]

logger = logging.getLogger(__name__)

_integrations: weakref.WeakSet[Integration] = weakref.WeakSet()
_fork_hook = threading.Lock()
_fork_hook_registered = False


def integration_of(app: Celery) -> Integration | None:
    """The integration ``install(app)`` made for ``app``, if any."""
    hooks = hooks_of(app)
    return hooks if isinstance(hooks, Integration) else None


def exchange_for(prefix: str, store_url: str) -> str:
    """The fanout exchange of one store: apps sharing a broker but not a store never mix.

    Sequence numbers are per store, so a subscriber must only see its own
    store's events; the exchange name carries a digest of the store's URL
    (password left out), the same in every process configured alike.
    """
    from sqlalchemy.engine import make_url

    try:
        url = make_url(store_url)
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
            database = str(Path(database).resolve())
        identity = "|".join(
            [
                url.get_backend_name(),
                url.host or "",
                str(url.port or ""),
                url.username or "",
                database,
                str(sorted(url.query.items())),
            ]
        )
    except Exception:
        identity = store_url
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"{prefix}.{digest}"


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
        self.tracker = CeleryProgressTracker(app, config, self._parts)
        self.tasks = TrackedTasks(app, settings.member_weight)
        sessions = SafeSessions(self.tracker)
        self.rollup = Rollup(sessions)
        self.liveness = Liveness(sessions, self.rollup, config.heartbeat_timeout_seconds)
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
        self.handles = ProgressHandles(self.tracker, self.runtime)
        self.dispatcher = Dispatcher(self.tasks, sessions)
        self.lifecycle = TaskLifecycle(self.tasks, sessions, self.rollup, self.runtime)
        self.update_states = UpdateStates(
            self.handles, self.runtime, writes, settings.update_state_to_backend
        )
        self._pid = os.getpid()
        _integrations.add(self)
        _watch_forks()

    # -- what a tracked task asks (TaskHooks) ----------------------------------------

    def progress_of(self, task: Task) -> TaskProgress:
        return self.handles.of_task(task.name, getattr(task.request, "id", None))

    def task_cancelled(self, task: Task, exc: TaskCancelled) -> None:
        self.lifecycle.on_cancelled(task, exc)

    def task_returned(self, task_id: str) -> None:
        self.update_states.finish(task_id)

    def update_state(
        self, task: Task, task_id: str, state: str | None, meta: Any, options: Mapping[str, Any]
    ) -> bool:
        return self.update_states.record(task, task_id, state, meta, options)

    # -- the store and the bus -----------------------------------------------------------

    def _parts(self, forked: bool) -> tuple[Store, EventBus]:
        url = self.config.store_url
        store: Store
        if url in ("memory://", "memory:", "memory"):
            store = MemoryStore()
        else:
            from ..store.sql import SqlStore

            store = SqlStore(url, create_schema=not forked)
        return store, self._bus_for(store)

    def _bus_for(self, store: Store) -> EventBus:
        kind = self.settings.bus
        if kind == "local" or isinstance(store, MemoryStore):
            return LocalBus()
        app = self.app
        bus = KombuBus(
            app.connection_for_write(),
            connection_pool=lambda: app.pool,  # looked up when first used: after a fork
            backfill=store.events_since,
            latest_seq=store.last_seq,
            exchange=exchange_for(self.settings.bus_exchange, self.config.store_url),
            poll_interval_s=self.settings.poll_interval_seconds,
            consume=False,
        )
        if kind == "poll":
            bus.fanout = False
        return bus

    # -- life ------------------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: the parent's running tasks, dispatches and threads are not ours."""
        self.runtime.after_fork()
        self.dispatcher.after_fork()
        self.liveness.after_fork()
        self._pid = os.getpid()

    def close(self) -> None:
        self.liveness.stop()
        self.runtime.stop()
        self.tracker.close()


def _watch_forks() -> None:
    global _fork_hook_registered
    with _fork_hook:
        if not _fork_hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook_registered = True


def _after_fork_in_child() -> None:
    for integration in list(_integrations):
        if integration._pid != os.getpid():
            try:
                integration.after_fork()
            except Exception:
                logger.exception("progress integration could not be renewed after fork")
