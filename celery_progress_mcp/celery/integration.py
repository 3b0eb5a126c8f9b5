"""``Integration``: one Celery app's progress tracking, in one process.

It owns the tracker, the worker runtime (tasks running here), the groups
being dispatched here, and implements what the signal handlers
(:mod:`.signals`) call. Every entry point is guarded: tracking never fails
a ``delay()`` or a task, whatever the store or the broker do.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import reprlib
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bus.base import EventBus
from ..bus.kombu import KombuBus
from ..bus.local import LocalBus
from ..core.config import ProgressConfig
from ..core.errors import InvalidProgress, InvalidTransition, ProgressError, SessionNotFound
from ..core.models import ProgressSession, SubOperationState
from ..core.states import Cancelled, InProgress, Paused, SessionStatus
from ..store.base import Store
from ..store.memory import MemoryStore
from . import keys
from .canvas import Dispatches, Member, MemberChange, member_mutation, seal_mutation
from .errors import TaskCancelled
from .handle import TaskProgress
from .runtime import HEARTBEATS_PER_TIMEOUT, Running, WorkerRuntime
from .settings import CelerySettings
from .tracker import CeleryProgressTracker, chain_session_id
from .translate import Translation

if TYPE_CHECKING:
    from celery import Celery, Task

    from .liveness import LivenessMonitor

__all__ = ["Integration", "integration_of"]

logger = logging.getLogger(__name__)

#: Attribute of the Celery app that holds its integration.
APP_ATTRIBUTE = "_celery_progress_integration"
#: Longest result summary recorded on completion.
RESULT_SUMMARY_CHARS = 200
#: Longest error message recorded on failure.
ERROR_MESSAGE_CHARS = 1000

_summary_repr = reprlib.Repr()
_summary_repr.maxstring = RESULT_SUMMARY_CHARS
_summary_repr.maxother = RESULT_SUMMARY_CHARS
_summary_repr.maxlist = 10
_summary_repr.maxdict = 10

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


def summarize(result: Any) -> str:
    return _summary_repr.repr(result)[: RESULT_SUMMARY_CHARS + 3]


class Integration:
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

    # -- which tasks ---------------------------------------------------------------

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

    # -- dispatch (before_task_publish) ----------------------------------------------

    def on_publish(self, task: Task, headers: Mapping[str, Any], body: Any) -> None:
        task_id = headers.get("id")
        if not task_id or headers.get("retries"):
            return  # a retry's message: its session goes on
        embed = body[2] if isinstance(body, tuple | list) and len(body) >= 3 else None
        embed = embed if isinstance(embed, dict) else {}
        group_id = headers.get("group")
        group_index = headers.get("group_index")
        if group_id and group_index is not None:
            self._member_published(task, task_id, group_id, group_index, embed.get("chord"))
            return
        metadata = self._task_metadata(task, headers)
        parent_id = None
        if group_id:
            parent_id = group_id  # a chord's callback carries its header's group id
            metadata[keys.ROLE] = keys.ROLE_CALLBACK
        chain = embed.get("chain")
        rest = self._chain_members(chain) if chain and parent_id is None else None
        if rest is not None and not self._exists(task_id):
            parent_id = chain_session_id(task_id)
            first = Member(task_id, task.name, self._weight(task), 0)
            self._start_chain(parent_id, [first, *rest])
        created = self._create(task_id, task.name, metadata, parent_id)
        if created and rest:
            for member in rest:
                member_task = self.app.tasks.get(member.name)
                meta = self._task_metadata(member_task, {}) if member_task else {}
                self._create(member.id, member.name, meta, parent_id)

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

    def _exists(self, session_id: str) -> bool:
        try:
            return self.tracker.store.get(session_id, with_history=False) is not None
        except ProgressError:
            return False

    def _weight(self, task: Any) -> float:
        weight = getattr(task, "progress_weight", None)
        if isinstance(weight, int | float) and weight > 0:
            return float(weight)
        return self.settings.member_weight

    def _member_published(
        self, task: Task, task_id: str, group_id: str, index: Any, chord: Any
    ) -> None:
        member = Member(task_id, task.name, self._weight(task), int(index))
        callback = self._callback_of(chord)
        kind = keys.KIND_CHORD if callback is not None else keys.KIND_GROUP
        if self.dispatches.record(group_id, kind, member, callback):
            metadata: dict[str, Any] = {keys.KIND: kind, keys.SEALED: False}
            if callback is not None:
                metadata[keys.CALLBACK] = callback.id
            self._create(group_id, f"celery.{kind}", metadata, None)

    def _callback_of(self, chord: Any) -> Member | None:
        if not isinstance(chord, dict):
            return None
        options = chord.get("options") or {}
        callback_id = options.get("task_id")
        name = chord.get("task")
        if not callback_id or not isinstance(name, str):
            return None
        task = self.app.tasks.get(name)
        weight = self._weight(task) if task is not None else self.settings.member_weight
        return Member(callback_id, name, weight, 1 << 30)

    def _chain_members(self, chain: Any) -> list[Member] | None:
        """The chain's remaining tasks in order, if all are tracked plain tasks."""
        if not isinstance(chain, list):
            return None
        members = []
        for position, signature in enumerate(reversed(chain), start=1):
            if not isinstance(signature, dict) or signature.get("subtask_type"):
                return None
            name = signature.get("task")
            task_id = (signature.get("options") or {}).get("task_id")
            task = self.tracked_name(name)
            if task is None or not task_id:
                return None
            members.append(Member(task_id, task.name, self._weight(task), position))
        return members

    def _start_chain(self, chain_id: str, members: list[Member]) -> None:
        metadata = {keys.KIND: keys.KIND_CHAIN, keys.SEALED: True, keys.MEMBERS: len(members)}
        if not self._create(chain_id, "celery.chain", metadata, None):
            return
        now = self.tracker.clock.now()
        self._mutate(chain_id, seal_mutation(self.tracker.engine, members, None, now))

    def seal(self, group_id: str) -> None:
        """The group's dispatch finished (its ``GroupResult`` was built here)."""
        record = self.dispatches.take(group_id)
        if record is None:
            return
        now = self.tracker.clock.now()
        mutation = seal_mutation(self.tracker.engine, record.members, record.callback, now)
        self._mutate(group_id, mutation)

    def _mutate(self, session_id: str, mutation: Any) -> ProgressSession | None:
        try:
            return self.tracker.apply_mutation(session_id, mutation)
        except (InvalidTransition, SessionNotFound) as exc:
            logger.debug("progress change of %s refused: %s", session_id, exc)
        except ProgressError as exc:
            logger.warning("progress change of %s failed: %s", session_id, exc)
        return None

    # -- members and parents ------------------------------------------------------------

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

    # -- running (task_prerun ... task_postrun) -------------------------------------------

    def on_prerun(self, task: Task, task_id: str) -> None:
        request = task.request
        tracker = self.tracker
        session = self._committed(task_id)
        group_id = getattr(request, "group", None)
        group_index = getattr(request, "group_index", None)
        parent_id = session.parent_id if session is not None else None
        if session is None:
            if group_id and group_index is not None:
                parent_id = group_id
            metadata = self._task_metadata(task, {})
            if group_index is not None:
                metadata[keys.GROUP_INDEX] = group_index
            self._create(task_id, task.name, metadata, parent_id)
        attempt = int(getattr(request, "retries", 0) or 0) + 1
        metadata = {
            keys.WORKER: getattr(request, "hostname", None),
            keys.PID: os.getpid(),
            keys.ATTEMPT: attempt,
        }
        running = Running(
            session_id=task_id,
            task_name=task.name,
            hostname=getattr(request, "hostname", None),
            parent_id=parent_id,
            weight=self._weight(task),
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
                if session.metadata.get(keys.ATTEMPT) == attempt:
                    # A redelivered message (acks_late): the session continues.
                    metadata[keys.REDELIVERED] = True
                    percentage = session.percentage
                    state = InProgress(percentage=None if session.sub_operations else percentage)
                    if isinstance(current, Paused):
                        self._quietly(tracker.resume_session, task_id)
                    running.percentage = percentage
            elif session.state.status not in (SessionStatus.INITIALIZING,):
                state = None  # finished elsewhere (swept, timed out): nothing to resume
        if state is not None:
            self._quietly(tracker.update_progress, task_id, state, (), metadata)
        self.runtime.started(running)
        if parent_id is not None:
            self.member_changed(
                parent_id, MemberChange(self._member(running), SubOperationState.ACTIVE)
            )

    def handle_for(self, task: Task) -> TaskProgress:
        """``self.progress``: the running task's handle (made on first use)."""
        request = task.request
        task_id = getattr(request, "id", None)
        running = self.runtime.get(task_id) if task_id else None
        if running is None:
            if task_id is None:
                return _detached_handle(self.tracker)
            running = Running(session_id=task_id, task_name=task.name)
        handle: TaskProgress | None = running.extra.get("handle")
        if handle is None:
            handle = running.extra["handle"] = TaskProgress(self.tracker, str(task_id), running)
        return handle

    def on_success(self, task: Task, result: Any) -> None:
        task_id = task.request.id
        if not task_id:
            return
        running = self.runtime.finished(task_id)
        summary = summarize(result)
        self._quietly(self.tracker.complete_session, task_id, summary)
        parent_id = self._parent_of(task_id, running)
        if parent_id is not None:
            member = self._member_of(task, task_id, running)
            self.member_changed(parent_id, MemberChange(member, SubOperationState.COMPLETED, 100.0))

    def on_failure(self, task: Task, task_id: str, exception: BaseException | None) -> None:
        running = self.runtime.finished(task_id)
        code = type(exception).__name__ if exception is not None else "UNKNOWN"
        if code == "WorkerLostError":
            code = "WORKER_LOST"
        message = str(exception) if exception is not None else ""
        message = (message or repr(exception) or code)[:ERROR_MESSAGE_CHARS]
        self._quietly(self.tracker.fail_session, task_id, message, code)
        parent_id = self._parent_of(task_id, running)
        if parent_id is not None:
            member = self._member_of(task, task_id, running)
            change = MemberChange(member, SubOperationState.FAILED, error=message)
            self.member_changed(parent_id, change)

    def on_retry(self, task: Task, request: Any, reason: Any) -> None:
        task_id = getattr(request, "id", None)
        if not task_id:
            return
        running = self.runtime.finished(task_id)
        retries = int(getattr(request, "retries", 0) or 0) + 1
        metadata = {
            keys.RETRY_REASON: str(reason)[:ERROR_MESSAGE_CHARS],
            "celery_retries": retries,
            keys.WORKER: None,  # waiting for its next attempt: no worker to watch
            keys.PID: None,
        }
        percentage = running.percentage if running is not None else None
        state = InProgress(percentage=percentage, current_step=f"retry {retries} scheduled")
        self._quietly(self.tracker.update_progress, task_id, state, (), metadata)

    def on_revoked(
        self, task: Task | None, request: Any, terminated: bool, signum: Any, expired: bool
    ) -> None:
        task_id = getattr(request, "id", None)
        if not task_id:
            return
        self.runtime.finished(task_id)
        if expired:
            reason = "expired"
        elif terminated:
            reason = f"terminated (signal {signum})"
        else:
            reason = "revoked"
        engine = self.tracker.engine
        now = self.tracker.clock.now()
        details = {
            keys.REVOKED: True,
            keys.TERMINATED: bool(terminated),
            keys.EXPIRED: bool(expired),
        }

        def cancel(session: ProgressSession) -> Any:
            marked = session.replace(metadata={**session.metadata, **details})
            return engine.cancel(marked, reason, now=now)

        session = self._mutate(task_id, cancel)
        parent_id = session.parent_id if session is not None else None
        if parent_id is None and session is None:
            group_id = getattr(request, "group", None)
            if group_id and getattr(request, "group_index", None) is not None:
                parent_id = group_id  # a member revoked before it started
        if parent_id is not None and task is not None:
            member = Member(task_id, task.name, self._weight(task), 0)
            self.member_changed(parent_id, MemberChange(member, SubOperationState.CANCELLED))

    def on_cancelled(self, task: Task, exc: TaskCancelled) -> None:
        """The task stopped on ``TaskCancelled``: the session ends Cancelled, the result REVOKED."""
        task_id = task.request.id or exc.session_id
        running = self.runtime.finished(task_id)
        with contextlib.suppress(ProgressError):  # cancelled from outside: it is already
            self.tracker.cancel_session(task_id, exc.reason or "cancelled", revoke=False)
        if not getattr(task, "ignore_result", False):
            try:
                task.backend.mark_as_revoked(
                    task_id, exc.reason or "cancelled", request=task.request
                )
            except Exception:
                logger.debug("could not mark %s revoked in the result backend", task_id)
        parent_id = self._parent_of(task_id, running)
        if parent_id is not None:
            member = self._member_of(task, task_id, running)
            self.member_changed(parent_id, MemberChange(member, SubOperationState.CANCELLED))

    def on_postrun(self, task_id: str) -> None:
        self.runtime.finished(task_id)

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

    # -- update_state -------------------------------------------------------------------

    def record_update_state(
        self, task: Task, task_id: str, translation: Translation, *, own: bool
    ) -> None:
        """``update_state`` as progress; cancellation is raised only into the task itself."""
        handle = self.handle_for(task) if own else TaskProgress(self.tracker, task_id)
        try:
            handle.update(
                translation.percentage,
                current=translation.current,
                total=translation.total,
                step=translation.step,
                eta_seconds=translation.eta_seconds,
                **translation.metadata,
            )
        except TaskCancelled:
            if own:
                raise
        except ProgressError as exc:
            logger.warning("update_state of %s not recorded as progress: %s", task_id, exc)

    def defer_backend_write(self, task: Task, task_id: str, state: str, meta: Any) -> None:
        """Write a progress state to the result backend at most once per window.

        The first write of a window goes at once; later ones wait and only
        the latest is written, by the worker's ticker when the window ends.
        The task's final result is never overwritten: ``finish_backend_writes``
        closes the way when the task returns, before Celery stores its result.
        """
        running = self.runtime.get(task_id)
        if running is None:
            task.backend.store_result(task_id, meta, state, request=task.request)
            return
        now_s = time.monotonic()
        with running.backend_lock:
            if running.backend_closed:
                return
            if now_s - running.backend_written_s < self.config.update_interval_s:
                running.backend_pending = (state, meta, task.request)
                return
            running.backend_pending = None
            running.backend_written_s = now_s
            task.backend.store_result(task_id, meta, state, request=task.request)

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


def _detached_handle(tracker: CeleryProgressTracker | None = None) -> TaskProgress:
    """A handle for a task called directly (no request id): reports nowhere."""
    return TaskProgress(None, "detached")


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
