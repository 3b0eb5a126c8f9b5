"""``ProgressTracker``: the engine behind the Store and EventBus ports.

Plain in-progress updates are coalesced (see :mod:`.window`) and, with a
store that waits on I/O, written behind by a thread of their own, many per
transaction (see :mod:`.writer`); transitions never are, and write what is
pending for their session first.

Two locks, the commit lock always taken first: the commit lock orders every
store write with its publication, so subscribers in this process see events
in sequence order; the state lock guards what the tracker keeps in memory.
The background writer does not hold the state lock during its transaction,
so a call that only coalesces or queues never waits on the database.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Self

from ..bus.base import EventBus
from ..bus.local import LocalBus
from ..core.clock import Clock, SystemClock
from ..core.config import ProgressConfig
from ..core.engine import Change, Engine, EtaHook
from ..core.errors import (
    InvalidProgress,
    InvalidTransition,
    ProgressError,
    SessionNotFound,
    StoreUnavailable,
    TrackingDisabled,
)
from ..core.eta import EtaEstimator
from ..core.models import (
    ProgressEvent,
    ProgressEventType,
    ProgressSession,
    ProgressStats,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
    detached,
)
from ..core.states import TERMINAL_STATUSES, InProgress, ProgressState, SessionStatus
from ..store.base import Applied, Mutation, SessionQuery, Store
from . import forks
from .outage import BufferedWrite, OutageBuffer
from .subscription import Subscription
from .urls import store_from_url
from .window import Pending, Window, WindowFlusher, Windows
from .writer import MAX_BATCH_UPDATES, MAX_QUEUED_UPDATES, ROOM_WAIT_S, BatchWriter

__all__ = ["CleanupResult", "ProgressTracker", "session_query"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CleanupResult:
    #: Active sessions failed with error_code "TIMEOUT".
    timed_out: list[str] = field(default_factory=list)
    #: Finished sessions removed after the retention window.
    removed: int = 0


class ProgressTracker:
    """Thread-safe progress tracking over a store and an event bus.

    With ``config.enabled`` false every method is a cheap no-op:
    ``create_session`` returns an id, writes do nothing, collection reads are
    empty, and ``get_session`` raises :class:`TrackingDisabled` (there is no
    session to return).
    """

    def __init__(
        self,
        config: ProgressConfig | None = None,
        *,
        store: Store | None = None,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        background: bool = True,
        may_time_out: Callable[[ProgressSession], bool] | None = None,
    ) -> None:
        """``may_time_out``: whether a session silent past ``session_timeout_seconds``
        may be failed with error_code "TIMEOUT" (default: every one may)."""
        self.config = config or ProgressConfig()
        self.enabled = self.config.enabled
        self.clock: Clock = clock or SystemClock()
        self._owns_store = store is None
        self.store = store if store is not None else store_from_url(self.config.store_url)
        self._owns_bus = bus is None
        self.bus = bus if bus is not None else LocalBus()
        self.engine = Engine(self.config)
        self._window_s = self.config.update_interval_s
        self._history_limit = self.config.max_history_snapshots
        self._background = background
        self._may_time_out = may_time_out
        self._closed = False
        self._start()
        self._unsubscribe_bus = self.bus.subscribe(self._fan_out)
        forks.renew_after_fork(self)

    def _start(self) -> None:
        """Make the locks, the in-memory state and the threads (again, after a fork)."""
        background = self._background
        #: Orders store writes with their publication (taken before ``_lock``).
        self._commit_lock = threading.RLock()
        #: Guards the windows, queues and subscriptions.
        self._lock = threading.RLock()
        self._windows = Windows()
        self._etas: dict[str, EtaEstimator] = {}
        self._subscriptions: tuple[Subscription, ...] = ()
        #: Writes held back by a store outage, replayed in order on reconnect.
        self._outage = OutageBuffer(
            self._replay_buffered,
            self._commit_lock,
            probe=self._store_answers,
            update_function=self.engine.update,
            # Like the window flusher: no thread under a hand-driven clock;
            # flush() (and cleanup, and close) retry instead.
            background=background and not self.clock.manual,
        )
        self._flusher = WindowFlusher(
            self.clock,
            self._flush_due,
            self.config.cleanup_interval_seconds,
            self._periodic_cleanup,
            background=background,
        )
        #: Notified whenever the writer takes a batch: room in the queue.
        self._room = threading.Condition(threading.Lock())
        #: Write-behind, where the store waits on I/O and threads may run.
        self._writer = (
            BatchWriter(self._write_queued)
            if self.store.blocking and background and not self.clock.manual
            else None
        )

    def after_fork(self) -> None:
        """In a forked child: new locks, threads and in-memory state, and the
        store's and the bus's own renewal. The parent's pending updates and
        subscriptions stay the parent's; the bus keeps delivering to this tracker."""
        if self._closed:
            return
        self.store.after_fork()
        self.bus.after_fork()
        self._start()

    # -- creating ------------------------------------------------------------

    def create_session(
        self,
        operation_id: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        parent_id: str | None = None,
    ) -> str:
        session_id = session_id if session_id is not None else str(uuid.uuid4())
        if not self.enabled:
            return session_id
        change = self.engine.create(
            session_id=session_id,
            operation_id=operation_id,
            metadata=metadata,
            parent_id=parent_id,
            now=self.clock.now(),
        )
        with self._commit_lock, self._lock:
            try:
                if self._outage.engaged:
                    raise StoreUnavailable("the progress store is down")
                events = self.store.create(
                    change,
                    max_active=self.config.max_concurrent_sessions,
                    history_limit=self._history_limit,
                )
            except StoreUnavailable as exc:
                self._outage.add_creation(change, exc)
                return session_id
            self._windows.created(change.session)
            self._publish(events)
        return session_id

    # -- progress ------------------------------------------------------------

    def update_progress(
        self,
        session_id: str,
        state: ProgressState,
        sub_operation_updates: Sequence[SubOperationUpdate] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record progress. Plain in-progress updates are coalesced per window
        and, with write-behind, queued for the writer."""
        if not self.enabled:
            return
        # A sub-operation update with a state may be a transition: written at once.
        if isinstance(state, InProgress) and not any(
            u.state is not None for u in sub_operation_updates
        ):
            if self._window_s > 0 and self._coalesce(
                session_id, state, sub_operation_updates, metadata
            ):
                return
            if self._writer is not None and self._enqueue(
                session_id, state, sub_operation_updates, metadata
            ):
                return
        eta = self._eta_hook(session_id) if isinstance(state, InProgress) else None
        update = functools.partial(
            self.engine.update,
            state=state,
            sub_operation_updates=tuple(sub_operation_updates),
            metadata=metadata,
            now=self.clock.now(),
        )
        self._commit(session_id, functools.partial(update, eta=eta), check=update)

    def _coalesce(
        self,
        session_id: str,
        state: InProgress,
        sub_updates: Sequence[SubOperationUpdate],
        metadata: Mapping[str, Any] | None,
    ) -> bool:
        """Keep the update pending if a write for this session happened within the window."""
        now_s = self.clock.monotonic()
        with self._lock:
            window = self._windows.get(session_id)
            if (
                window is None
                or window.status != SessionStatus.IN_PROGRESS
                or now_s - window.last_write_s >= self._window_s
            ):
                return False
            if sub_updates:
                checked = self._sub_updates_coalesce(window, sub_updates)
                if checked is None:
                    return False
                sub_updates = checked
            if metadata:
                metadata = self.engine.copy_metadata(metadata, "metadata")
                pending_metadata = window.pending.metadata if window.pending else None
                merged = {**window.session.metadata, **(pending_metadata or {}), **metadata}
                self.engine.check_metadata(merged, "the session's merged metadata")
            if window.pending is None:
                deadline_s = window.last_write_s + self._window_s
                window.pending = Pending(state, now_s, deadline_s)
                self._flusher.schedule(session_id, deadline_s)
            else:
                window.pending.state = state
                window.pending.at_s = now_s
            if sub_updates:
                window.pending.add_sub_updates(sub_updates)
            if metadata:
                window.pending.add_metadata(metadata)
        return True

    def _sub_updates_coalesce(
        self, window: Window, sub_updates: Sequence[SubOperationUpdate]
    ) -> list[SubOperationUpdate] | None:
        """These (state-less) sub-operation updates, checked, to wait for the window.

        None where an unknown or finished sub-operation is named: the write
        path raises the precise error. Bad metadata raises here, before
        anything changes; what is kept is a copy of the metadata as checked.
        """
        known = {sub.id: sub for sub in window.session.sub_operations}
        earlier = window.pending.sub_updates if window.pending is not None else None
        checked = []
        for update in sub_updates:
            sub = known.get(update.id)
            if sub is None or sub.state.is_terminal:
                return None
            if update.metadata:
                update = self._own_copy(update)
                before = earlier.get(update.id) if earlier else None
                merged = {**sub.metadata, **(before.metadata if before else {}), **update.metadata}
                self.engine.check_metadata(merged, f"metadata of sub-operation {sub.id!r}")
            checked.append(update)
        return checked

    def _own_copy(self, update: SubOperationUpdate) -> SubOperationUpdate:
        """``update`` with a checked copy of its metadata, shared with nobody."""
        if not update.metadata:
            return update
        what = f"metadata of sub-operation {update.id!r}"
        return update.replace(metadata=self.engine.copy_metadata(update.metadata, what))

    def _enqueue(
        self,
        session_id: str,
        state: InProgress,
        sub_updates: Sequence[SubOperationUpdate],
        metadata: Mapping[str, Any] | None,
    ) -> bool:
        """Queue the update for the writer, checked first against the session as
        last written or queued (a bad update raises here, and nothing is queued)."""
        if self._windows.queued_count >= MAX_QUEUED_UPDATES:
            self._wait_for_room()
        now_s = self.clock.monotonic()
        with self._lock:
            window = self._windows.get(session_id)
            if window is None or window.status != SessionStatus.IN_PROGRESS or self._outage.engaged:
                return False
            if window.pending is not None:
                # The coalesced update came first: it goes first.
                if not self._queue(session_id, window, window.pending):
                    return False
                window.pending = None
            item = Pending(state, now_s, now_s)
            if metadata:
                item.metadata = self.engine.copy_metadata(metadata, "metadata")
            if sub_updates:
                item.add_sub_updates([self._own_copy(update) for update in sub_updates])
            self._queue(session_id, window, item, check=True)
            window.last_write_s = now_s
        assert self._writer is not None
        self._writer.notify()
        return True

    def _wait_for_room(self) -> None:
        """Back-pressure: the database does not keep up, so wait for the writer
        to take its next batch (or, if it does not within ``ROOM_WAIT_S``,
        write one in this thread)."""
        deadline_s = time.monotonic() + ROOM_WAIT_S
        with self._room:
            while self._windows.queued_count >= MAX_QUEUED_UPDATES:
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0:
                    break
                self._room.wait(remaining_s)
        if self._windows.queued_count >= MAX_QUEUED_UPDATES:
            self._write_queued()

    def _queue(
        self, session_id: str, window: Window, item: Pending, *, check: bool = False
    ) -> bool:
        """Append ``item`` to the window's queue, moving its view on.

        With ``check``, what the engine refuses raises; without, it is not queued
        (False).
        """
        try:
            change = self._update_of(item)(window.session)
        except ProgressError:
            if check:
                raise
            return False
        self._windows.queue(session_id, item, change.session)
        return True

    def _write_queued(self, limit: int | None = MAX_BATCH_UPDATES) -> bool:
        """Write what is queued, up to ``limit`` updates, in one ``apply_many``.

        Returns True if some were left for another round. The state lock is
        held only to take the updates and to note what was written, not
        during the transaction: callers go on queueing meanwhile.
        """
        with self._commit_lock:
            with self._lock:
                runs = [
                    (session_id, [self._mutation(session_id, item) for item in items])
                    for session_id, items in self._windows.take(limit)
                ]
            with self._room:
                self._room.notify_all()
            self._write_runs(runs, in_flight=True)
            return self._windows.has_queued

    def _write_runs(
        self, runs: list[tuple[str, list[Mutation]]], *, in_flight: bool = False
    ) -> None:
        """Write sessions' runs of updates together (caller holds the commit lock).

        ``in_flight``: the runs were counted in their windows' ``in_flight``.
        The store's refusal of an update (the session changed elsewhere) is
        logged and the rest of that session's run dropped, as for a coalesced
        update; an outage hands them to the outage buffer, in order.
        """
        sizes = {session_id: len(mutations) for session_id, mutations in runs}
        try:
            results = self._apply_runs(runs)
        finally:
            if in_flight:
                with self._lock:
                    self._windows.landed(sizes)
        events = []
        with self._lock:
            for result in results:
                events.extend(result.events)
                if result.session is not None:
                    self._note_written(result.session)
                if result.error is not None:
                    logger.debug(
                        "dropped %d queued update(s) of %s: %s",
                        sizes[result.session_id] - result.applied,
                        result.session_id,
                        result.error,
                    )
                    self._forget(result.session_id)
        self._publish(events)

    def _apply_runs(self, runs: list[tuple[str, list[Mutation]]]) -> list[Applied]:
        """``store.apply_many``, for the runs the outage buffer does not hold (those
        it takes, in order, as it takes everything while the store is down)."""
        held = [run for run in runs if self._outage.holds(run[0])]
        if held:
            runs = [run for run in runs if all(run is not h for h in held)]
        results: list[Applied] = []
        error: StoreUnavailable | None = None
        if runs:
            try:
                results = self.store.apply_many(runs, history_limit=self._history_limit)
            except StoreUnavailable as exc:
                held, error = held + runs, exc
        for session_id, mutations in held:
            for mutation in mutations:
                self._outage.add(session_id, mutation, error)
        return results

    def _update_of(self, item: Pending) -> functools.partial[Change]:
        """The engine call of a pending or queued update, without the ETA (no side effect)."""
        return functools.partial(
            self.engine.update,
            state=item.state,
            sub_operation_updates=item.sub_update_list(),
            metadata=item.metadata,
            now=self._wall_time(item.at_s),
        )

    def _mutation(self, session_id: str, item: Pending) -> Mutation:
        """The engine call that writes a pending or queued update."""
        return functools.partial(self._update_of(item), eta=self._eta_hook(session_id, item.at_s))

    def _eta_hook(self, session_id: str, at_s: float | None = None) -> EtaHook:
        """The session's ETA estimator, observing at ``at_s`` (default: now)."""
        estimator = self._etas.get(session_id)
        if estimator is None:
            estimator = self._etas[session_id] = EtaEstimator(self.config.eta_smoothing)
        return functools.partial(
            _observe, estimator, self.clock.monotonic() if at_s is None else at_s
        )

    # -- sub-operations --------------------------------------------------------

    def add_sub_operations(self, session_id: str, sub_operations: Iterable[SubOperation]) -> None:
        if not self.enabled:
            return
        self._commit(
            session_id,
            functools.partial(
                self.engine.add_sub_operations,
                sub_operations=tuple(sub_operations),
                now=self.clock.now(),
            ),
        )

    def start_sub_operation(self, session_id: str, sub_operation_id: str) -> None:
        self._change_sub(
            session_id, SubOperationUpdate(id=sub_operation_id, state=SubOperationState.ACTIVE)
        )

    def update_sub_operation(
        self,
        session_id: str,
        sub_operation_id: str,
        percentage: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Set a sub-operation's percentage or metadata (written at once, like a transition)."""
        update = SubOperationUpdate(
            id=sub_operation_id, percentage=percentage, metadata=dict(metadata or {})
        )
        self._change_sub(session_id, update)

    def complete_sub_operation(
        self, session_id: str, sub_operation_id: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        self._change_sub(
            session_id,
            SubOperationUpdate(
                id=sub_operation_id,
                state=SubOperationState.COMPLETED,
                metadata=dict(metadata or {}),
            ),
        )

    def fail_sub_operation(self, session_id: str, sub_operation_id: str, error: str) -> None:
        self._change_sub(
            session_id,
            SubOperationUpdate(id=sub_operation_id, state=SubOperationState.FAILED, error=error),
        )

    def _change_sub(self, session_id: str, update: SubOperationUpdate) -> None:
        if not self.enabled:
            return
        self._commit(
            session_id,
            functools.partial(
                self.engine.change_sub_operation, update=update, now=self.clock.now()
            ),
        )

    # -- lifecycle -------------------------------------------------------------

    def pause_session(self, session_id: str, reason: str = "") -> None:
        self._transition(session_id, self.engine.pause, reason=reason)

    def resume_session(self, session_id: str) -> None:
        self._transition(session_id, self.engine.resume)

    def complete_session(self, session_id: str, result_summary: str | None = None) -> None:
        self._transition(session_id, self.engine.complete, result_summary=result_summary)

    def fail_session(
        self, session_id: str, error_message: str, error_code: str | None = None
    ) -> None:
        self._transition(
            session_id, self.engine.fail, error_message=error_message, error_code=error_code
        )

    def cancel_session(self, session_id: str, reason: str = "") -> None:
        self._transition(session_id, self.engine.cancel, reason=reason)

    def heartbeat(self, session_id: str) -> None:
        """Mark the session alive without recording progress."""
        self._transition(session_id, self.engine.heartbeat)

    def _transition(self, session_id: str, method: Any, **arguments: Any) -> None:
        if not self.enabled:
            return
        self._commit(session_id, functools.partial(method, now=self.clock.now(), **arguments))

    def apply_mutation(self, session_id: str, mutation: Mutation) -> ProgressSession | None:
        """Run an engine function on the committed session, atomically.

        What is pending for the session is written first; the mutation's
        events are published. None while a store outage buffers the write.
        """
        if not self.enabled:
            return None
        return self._commit(session_id, mutation)

    # -- committing ------------------------------------------------------------

    def _commit(
        self, session_id: str, mutation: Mutation, *, check: Mutation | None = None
    ) -> ProgressSession | None:
        """Apply ``mutation``, writing out what is pending for the session first.

        With an update pending, the call is first tried (``check``, or
        ``mutation`` where it has no side effects) on the session as
        ``get_session`` shows it, so a call that is refused writes nothing.

        While the store is unavailable the write is buffered (see
        :mod:`.outage`) and None returned: the caller is not failed.
        """
        with self._commit_lock, self._lock:
            window = self._windows.get(session_id)
            if window is not None and (window.pending is not None or window.queued):
                view = self._local_view(session_id, window)
                if view is not None:
                    (check or mutation)(view)
            self._flush_session(session_id)
            try:
                if self._outage.holds(session_id):
                    self._outage.add(session_id, mutation)
                    return None
                session, events = self.store.apply(
                    session_id, mutation, history_limit=self._history_limit
                )
            except StoreUnavailable as exc:
                self._outage.add(session_id, mutation, exc)
                return None
            except (InvalidTransition, SessionNotFound):
                # What we knew of the session may be stale: forget it, so the
                # next update goes to the store and sees the truth.
                self._forget(session_id)
                raise
            self._note_written(session)
            self._publish(events)
            return session

    def _local_view(self, session_id: str, window: Window) -> ProgressSession | None:
        """The session as ``get_session`` shows it (without history); None if unknown."""
        base = window.session if window.ahead() else self._committed(session_id)
        if base is None or window.pending is None:
            return base
        return self._apply_pending(base, window.pending)

    def _committed(self, session_id: str) -> ProgressSession | None:
        """The session as the store has it; None if the store cannot say (an outage)."""
        if self._outage.engaged:
            return None
        try:
            return self.store.get(session_id, with_history=False)
        except StoreUnavailable:
            return None

    def _note_written(self, session: ProgressSession) -> None:
        if session.state.status in TERMINAL_STATUSES:
            self._forget(session.id)
        else:
            self._windows.written(session, self.clock.monotonic())

    def _forget(self, session_id: str) -> None:
        self._windows.forget(session_id)
        self._etas.pop(session_id, None)

    def _flush_session(self, session_id: str) -> None:
        """Write out what is queued and pending for one session (caller holds the lock)."""
        items = self._windows.take_session(session_id)
        if items:
            mutations = [self._mutation(session_id, item) for item in items]
            self._write_runs([(session_id, mutations)])

    def _wall_time(self, at_s: float) -> Any:
        return self.clock.now() - timedelta(seconds=max(0.0, self.clock.monotonic() - at_s))

    def _flush_due(self, session_ids: Iterable[str]) -> None:
        now_s = self.clock.monotonic()
        with self._commit_lock, self._lock:
            for session_id in session_ids:
                window = self._windows.get(session_id)
                # A deadline left over from a pending update that a transition
                # already wrote out must not cut a later window short.
                pending = window.pending if window is not None else None
                if pending is not None and pending.deadline_s <= now_s:
                    self._flush_session(session_id)

    def flush(self) -> None:
        """Write out every queued and coalesced update now, and what an outage held
        back if it can."""
        self._write_queued(limit=None)
        with self._commit_lock, self._lock:
            for session_id in self._windows.with_pending():
                self._flush_session(session_id)
        if self._outage.pending_sessions():
            self._outage.drain()

    # -- riding out a store outage -------------------------------------------------

    def _replay_buffered(self, write: BufferedWrite) -> None:
        """Write one buffered write (the buffer holds the commit lock)."""
        if write.change is not None:
            events = self.store.create(
                write.change,
                max_active=self.config.max_concurrent_sessions,
                history_limit=self._history_limit,
            )
        else:
            assert write.mutation is not None
            session, events = self.store.apply(
                write.session_id, write.mutation, history_limit=self._history_limit
            )
            with self._lock:
                self._note_written(session)
        self._publish(events)

    def _store_answers(self) -> bool:
        return bool(self.store.health().get("status") == "ok")

    def health(self) -> dict[str, Any]:
        """The store's health and the outage buffer's state.

        ``status`` is ``"ok"``, or ``"degraded"`` while writes are being
        buffered (the store is unreachable, or the backlog is being replayed).
        """
        outage = self._outage.report()
        store = self.store.health() if not outage["engaged"] else {"status": "unavailable"}
        degraded = outage["engaged"] or outage["buffered"] or store.get("status") != "ok"
        return {"status": "degraded" if degraded else "ok", "store": store, "outage": outage}

    # -- reading -----------------------------------------------------------------

    def get_session(self, session_id: str) -> ProgressSession:
        """The session as committed, with this process's pending update applied."""
        if not self.enabled:
            raise TrackingDisabled("progress tracking is disabled (ProgressConfig.enabled=False)")
        # What this process holds back is read first, then the store (without
        # the state lock): an update made before this call is in one or the other.
        with self._lock:
            window = self._windows.get(session_id)
            local = window.session if window is not None and window.ahead() else None
            pending = window.pending if window is not None else None
        session = self.store.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        if local is None and pending is None:
            return session
        # Queued updates are ahead of the store, unless the session has moved
        # on elsewhere (cancelled, paused): then they will be refused.
        ahead = local is not None and session.state.status == SessionStatus.IN_PROGRESS
        base = local if ahead and local is not None else session
        view = base if pending is None else self._apply_pending(base, pending)
        if view is None:
            return session
        # The view is this process's own (and the store's cache's): the
        # reader gets a copy of its metadata.
        return detached(view.replace(history=())).replace(history=session.history)

    def _apply_pending(self, session: ProgressSession, pending: Pending) -> ProgressSession | None:
        """The session with a pending update applied; None if the update no longer applies."""
        try:
            return self._update_of(pending)(session).session
        except ProgressError:
            return None

    def list_sessions(
        self,
        *,
        status: str | Collection[str] | None = None,
        operation_id: str | None = None,
        parent_id: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ProgressSession]:
        """Sessions without history, newest first; ``search`` matches id or operation."""
        if not self.enabled:
            return []
        return self.store.list_sessions(
            session_query(status, operation_id, parent_id, search, limit, offset)
        )

    def count_sessions(
        self,
        *,
        status: str | Collection[str] | None = None,
        operation_id: str | None = None,
        parent_id: str | None = None,
        search: str | None = None,
    ) -> int:
        """How many sessions ``list_sessions`` would page through with these filters."""
        if not self.enabled:
            return 0
        return self.store.count_sessions(
            session_query(status, operation_id, parent_id, search, 0, 0)
        )

    def get_stats(self) -> ProgressStats:
        if not self.enabled:
            return ProgressStats(
                active_sessions=0,
                sessions_by_state={},
                avg_session_duration_seconds=0.0,
                total_completed=0,
                total_failed=0,
                total_cancelled=0,
            )
        return self.store.stats()

    # -- events ------------------------------------------------------------------

    def subscribe_to_events(
        self,
        *,
        session_id: str | None = None,
        event_types: Collection[ProgressEventType | str] | None = None,
        since: int | None = None,
    ) -> Subscription:
        """Events from now on or, with ``since``, from the log after that sequence number.

        Events come from every process that shares the store and the bus.
        """
        subscription = Subscription(
            buffer_size=self.config.subscriber_buffer_size,
            session_id=session_id,
            event_types=event_types,
            on_close=self._drop_subscription,
        )
        if not self.enabled:
            subscription.close()
            return subscription
        self.bus.start_consuming()
        # Deliveries from other processes wait while the subscription reads up
        # from the log and joins; the commit lock: nothing is published here
        # meanwhile. What comes both ways is taken once (by sequence number).
        with self.bus.holding(), self._commit_lock, self._lock:
            self._replay(subscription, self.store.last_seq() if since is None else since)
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def _replay(self, subscription: Subscription, since: int) -> None:
        cursor = since
        subscription.last_seq = since
        while True:
            page = self.store.events_since(cursor, session_id=subscription.session_id)
            if not page:
                return
            for event in page:
                subscription.push(event)
            cursor = page[-1].seq

    def _drop_subscription(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def _publish(self, events: list[ProgressEvent]) -> None:
        if events:
            self.bus.publish(events)

    def _fan_out(self, event: ProgressEvent) -> None:
        for subscription in self._subscriptions:
            subscription.push(event)

    # -- housekeeping --------------------------------------------------------------

    def cleanup_expired(self) -> CleanupResult:
        """Fail active sessions silent too long; remove finished ones past retention."""
        if not self.enabled:
            return CleanupResult()
        self.flush()
        now = self.clock.now()
        timeout = timedelta(seconds=self.config.session_timeout_seconds)
        timed_out = []
        for session_id in self.store.stale_sessions(now - timeout):
            try:
                self._commit(
                    session_id, functools.partial(self._time_out, now=now, timeout=timeout)
                )
            except ProgressError:
                continue  # finished or refreshed meanwhile
            timed_out.append(session_id)
        retention = timedelta(seconds=self.config.finished_retention_seconds)
        with self._commit_lock:
            events = self.store.purge_finished(now - retention, self.engine.expired_event)
            self._publish(events)
        self.store.purge_events(now - retention)
        return CleanupResult(timed_out=timed_out, removed=len(events))

    def _time_out(self, session: ProgressSession, *, now: Any, timeout: timedelta) -> Change:
        if self._may_time_out is not None and not self._may_time_out(session):
            raise InvalidTransition(f"session {session.id!r} is spared from timing out")
        last = session.heartbeat_at or session.updated_at
        if now - last < timeout:
            raise InvalidTransition(f"session {session.id!r} is alive again")
        seconds = int(timeout.total_seconds())
        return self.engine.fail(
            session, f"no progress reported for {seconds} s", "TIMEOUT", now=now
        )

    def _periodic_cleanup(self) -> None:
        try:
            self.cleanup_expired()
        except Exception:
            logger.exception("progress cleanup failed")

    def close(self) -> None:
        """Flush pending updates, stop background work, close what the tracker opened."""
        if self._closed:
            return
        self._closed = True
        self._flusher.stop()
        if self._writer is not None:
            self._writer.stop()
        self.flush()
        self._outage.close()
        self._unsubscribe_bus()
        for subscription in self._subscriptions:
            subscription.close()
        if self._owns_bus:
            self.bus.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _observe(estimator: EtaEstimator, at_s: float, percentage: float) -> float | None:
    return estimator.observe(percentage, at_s)


def session_query(
    status: str | Collection[str] | None,
    operation_id: str | None,
    parent_id: str | None,
    search: str | None,
    limit: int,
    offset: int,
) -> SessionQuery:
    """Check list filters and build the store's query; ``InvalidProgress`` if bad."""
    if limit < 0 or offset < 0:
        raise InvalidProgress("limit and offset must be non-negative")
    statuses = [status] if isinstance(status, str) else status
    if statuses is not None:
        unknown = set(statuses) - set(SessionStatus)
        if unknown:
            raise InvalidProgress(f"unknown session status(es): {sorted(unknown)}")
    return SessionQuery(
        statuses=statuses,
        operation_id=operation_id,
        parent_id=parent_id,
        search=search,
        limit=limit,
        offset=offset,
    )
