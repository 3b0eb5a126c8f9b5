"""``Integration``: one Celery app's progress tracking, in one process.

It owns the tracker, the worker runtime (tasks running here) and the groups
being dispatched here; what the signal handlers (:mod:`.signals`) call comes
from its mixins: :mod:`.publishing` (dispatch), :mod:`.lifecycle` (a task's
run), :mod:`.results` (``update_state``). Every entry point is guarded:
tracking never fails a ``delay()`` or a task, whatever the store or the
broker do.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bus.base import EventBus
from ..bus.kombu import KombuBus
from ..bus.local import LocalBus
from ..core.config import ProgressConfig
from ..core.errors import InvalidTransition, ProgressError, SessionNotFound
from ..core.states import Cancelled
from ..store.base import Store
from ..store.memory import MemoryStore
from .canvas import Dispatches, MemberChange
from .lifecycle import LifecycleMixin
from .publishing import PublishingMixin
from .results import ResultWritesMixin
from .runtime import HEARTBEATS_PER_TIMEOUT, Running, WorkerRuntime
from .settings import CelerySettings
from .tracker import CeleryProgressTracker

if TYPE_CHECKING:
    from celery import Celery

    from .liveness import LivenessMonitor

__all__ = ["Integration", "integration_of"]

logger = logging.getLogger(__name__)

#: Attribute of the Celery app that holds its integration.
APP_ATTRIBUTE = "_celery_progress_integration"
_integrations: weakref.WeakSet[Integration] = weakref.WeakSet()
_fork_hook = threading.Lock()
_fork_hook_registered = False


def integration_of(app: Celery) -> Integration | None:
    integration: Integration | None = getattr(app, APP_ATTRIBUTE, None)
    return integration


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


class Integration(PublishingMixin, LifecycleMixin, ResultWritesMixin):
    """Progress tracking for one Celery app in this process."""

    def __init__(self, app: Celery, config: ProgressConfig, settings: CelerySettings) -> None:
        self.app = app
        self.config = config
        self.settings = settings
        #: Whether this worker sends task events (``-E``), learnt at worker start.
        self.worker_task_events = False
        #: The signal receivers connected by ``install`` (for ``uninstall``).
        self.connections: list[tuple[Any, Any]] = []
        #: The app's ``GroupResult`` class before ``install`` wrapped it.
        self.group_result_class: Any = None
        self.tracker = CeleryProgressTracker(app, config, self._parts)
        self.dispatches = Dispatches()
        self.runtime = self._new_runtime()
        self._liveness: LivenessMonitor | None = None
        self._liveness_lock = threading.Lock()
        self._pid = os.getpid()
        _integrations.add(self)
        _watch_forks()

    # -- parts ---------------------------------------------------------------------

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

    def _new_runtime(self) -> WorkerRuntime:
        return WorkerRuntime(
            window_s=self.config.update_interval_s,
            heartbeat_interval_s=self.config.heartbeat_timeout_seconds / HEARTBEATS_PER_TIMEOUT,
            heartbeat=self._heartbeat,
            push_rollup=self._push_rollup,
            emit_progress=self._emit_progress,
            session_percentage=self._session_percentage,
            flush_backend=self._flush_backend,
        )

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's running tasks and dispatches are not ours."""
        self.runtime = self._new_runtime()
        self.dispatches = Dispatches()
        self._liveness = None  # the parent's thread did not come along
        self._liveness_lock = threading.Lock()
        self._pid = os.getpid()

    # -- the worker runtime's chores ----------------------------------------------------

    def _heartbeat(self, running: Running) -> None:
        try:
            self.tracker.heartbeat(running.session_id)
        except (InvalidTransition, SessionNotFound):
            session = self._committed(running.session_id)
            if session is None or isinstance(session.state, Cancelled):
                running.cancelled = True
                running.cancel_reason = getattr(session.state, "reason", "") if session else ""
            return
        if running.parent_id is not None:
            with contextlib.suppress(ProgressError):
                self.tracker.heartbeat(running.parent_id)

    def _push_rollup(self, running: Running, percentage: float) -> None:
        if running.parent_id is not None:
            change = MemberChange(self._member(running), percentage=percentage)
            self.member_changed(running.parent_id, change)

    def _session_percentage(self, running: Running) -> float | None:
        return self.tracker.get_session(running.session_id).percentage

    def _emit_progress(self, running: Running) -> None:
        enabled = self.settings.task_events
        if enabled is None:
            enabled = self.worker_task_events
        if not enabled:
            return
        from .events import send_task_progress

        send_task_progress(self.app, running)

    # -- liveness ----------------------------------------------------------------------

    def start_liveness(self) -> None:
        """Start sweeping for sessions whose worker died (idempotent)."""
        from .liveness import LivenessMonitor

        with self._liveness_lock:
            if self._liveness is None:
                self._liveness = LivenessMonitor(self)
                self._liveness.start()

    def stop_liveness(self) -> None:
        with self._liveness_lock:
            monitor, self._liveness = self._liveness, None
        if monitor is not None:
            monitor.stop()

    def close(self) -> None:
        self.stop_liveness()
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
                integration.reset_after_fork()
            except Exception:
                logger.exception("progress integration could not be renewed after fork")
