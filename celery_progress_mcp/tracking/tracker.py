"""``ProgressTracker``: the engine behind the Store and EventBus ports, as a facade.

The tracker checks its arguments and hands each call to the collaborator
whose job it is:

* the write path: :mod:`.coalescing` holds plain updates back within a
  session's window, :mod:`.flusher` writes them when it ends,
  :mod:`.write_behind` queues the rest for a writer thread (with a store
  that waits on I/O: creations, and every write of a session this process
  knows), and :mod:`.committing` writes everything else, in order with the
  publication of its events, handing writes to :mod:`.outage` while the
  store is down; :mod:`.refusals` tells listeners what the store refused
  of the writes the caller did not wait for;
* :mod:`.reading`: sessions with what this process holds back applied;
* :mod:`.subscription_hub`: subscriptions, read up from the log and fed by the bus;
* :mod:`.housekeeping`: timeouts and retention;
* :mod:`.journal_replay`: what processes that closed while the store was
  down kept in its journal on this machine (:mod:`.journal`), written when
  the tracker is made, after an outage, and with each periodic cleanup.

What this process holds back, per session, is in :mod:`.held_updates`; the
locks the collaborators share, and their order, in :mod:`.locks`. Every
tracker is renewed in a forked child (:mod:`.forks`) and closed at
interpreter exit (:mod:`.exits`).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Self, TypedDict

from ..bus.base import EventBus
from ..bus.local import LocalBus
from ..core.clock import Clock, SystemClock
from ..core.config import ProgressConfig
from ..core.engine import Engine
from ..core.errors import InvalidProgress, ProgressError, TrackingDisabled
from ..core.models import (
    ProgressEventType,
    ProgressSession,
    ProgressStats,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
    detached,
)
from ..core.states import InProgress, ProgressState
from ..store.base import Mutation, Store
from . import exits, forks
from .coalescing import Coalescer
from .committing import Committer
from .flusher import WindowFlusher
from .housekeeping import CleanupResult, Housekeeper, MayTimeOut
from .journal import Journal
from .journal_replay import JournalReplayer
from .reading import Reader, session_query
from .refusals import Refusals
from .shared_state import SharedState
from .store_factory import store_from_url
from .subscription import Subscription
from .subscription_hub import SubscriptionHub
from .write_behind import WriteQueue
from .write_path import WritePath

__all__ = ["JOURNAL_CLOSE_WAIT_S", "ProgressTracker", "TrackerOptions"]

#: How long ``close()`` waits, at most, for a replay of the store's journal under
#: way (out of ``write_path.CLOSE_WAIT_S``): a process that has just opened the
#: store writes what the journal held before it exits.
JOURNAL_CLOSE_WAIT_S = 5.0


logger = logging.getLogger(__name__)


class TrackerOptions(TypedDict, total=False):
    """The keywords of ``ProgressTracker(config, **options)``, for a class that
    makes a tracker on its caller's behalf (``AsyncProgressTracker``)."""

    store: Store | None
    bus: EventBus | None
    clock: Clock | None
    background: bool
    may_time_out: MayTimeOut | None


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
        may_time_out: MayTimeOut | None = None,
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
        self._background = background
        self._may_time_out = may_time_out
        self._closed = False
        self._refusals = Refusals()
        self._assemble()
        self._hub = SubscriptionHub(
            self.store,
            self.bus,
            self._shared.locks,
            buffer_size=self.config.subscriber_buffer_size,
            enabled=self.enabled,
        )
        self._unsubscribe_bus = self.bus.subscribe(self._hub.fan_out)
        forks.renew_after_fork(self)
        exits.close_at_exit(self)
        # What processes that closed while the store was down kept on this machine.
        self._replay_journal()

    def _assemble(self) -> None:
        """Make the locks, the in-memory state, the write path and its threads."""
        config, clock, store, engine = self.config, self.clock, self.store, self.engine
        # No thread under a hand-driven clock: advancing it runs what came due,
        # and flush() (and cleanup, and close) retry what an outage held back.
        threads = self._background and not clock.manual
        self._shared = shared = SharedState(engine, clock, config.eta_smoothing)
        journal = _journal_of(store)
        self._committer = committer = Committer(
            shared,
            store,
            self.bus,
            max_active=config.max_concurrent_sessions,
            history_limit=config.max_history_snapshots,
            retry_in_background=threads,
            refusals=self._refusals,
            journal=journal,
            reconnected=self._replay_journal,
        )
        self._replayer = (
            JournalReplayer(journal, committer.replay, engine, background=threads)
            if journal is not None
            else None
        )
        self._outage = committer.outage
        #: Write-behind, where the store waits on I/O and threads may run.
        self._queue = WriteQueue(shared, committer) if store.blocking and threads else None
        self._writes = WritePath(shared, committer, self._queue, self._refusals)
        self._housekeeper = Housekeeper(
            store, engine, clock, config, committer, self.flush, self._may_time_out
        )
        self._flusher = WindowFlusher(
            clock,
            committer.flush_due,
            config.cleanup_interval_seconds,
            self._run_periodically,
            background=self._background,
        )
        self._coalescer = Coalescer(shared, self._flusher, self._window_s)
        self._reader = Reader(store, shared)

    def _run_periodically(self) -> None:
        """The flusher's periodic call: cleanup, and what the journal holds."""
        self._housekeeper.run_periodically()
        self._replay_journal()

    def _replay_journal(self) -> None:
        """Write what the store's journal holds, if anything (in the background)."""
        replayer = self._replayer
        if replayer is not None and self.enabled and not self._closed:
            try:
                replayer.start()
            except Exception:
                logger.exception("the progress journal could not be read")

    def after_fork(self) -> None:
        """In a forked child: new locks, threads and in-memory state, and the
        store's and the bus's own renewal. The parent's held updates and
        subscriptions stay the parent's; the bus goes on delivering to this tracker."""
        if self._closed:
            return
        self.store.after_fork()
        self.bus.after_fork()
        self._refusals.after_fork()
        # The parent's threads are gone and their locks may be held for ever:
        # what they served is abandoned, not stopped.
        self._flusher.abandon()
        self._assemble()
        self._hub.after_fork(self._shared.locks)

    # -- creating ------------------------------------------------------------

    def create_session(
        self,
        operation_id: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        parent_id: str | None = None,
        created_at: datetime | None = None,
        if_absent: bool = False,
    ) -> str:
        """Create a session (Initializing) and return its id.

        ``created_at``: when it began (an aware datetime; default now), e.g.
        when a task was dispatched, for a session first written later.
        ``if_absent``: if the session exists, leave it as it is (no error).

        With a writer thread (a store that waits on I/O) the creation is
        checked here (ids, metadata, and capacity against what this process
        knows), queued, and the call returns: ``get_session`` in this process
        shows the session at once, and the writer writes it with its next
        batch. The store checks it again then: a session with this id
        created elsewhere, or capacity reached through other processes, is
        refused then and told to the refusal listeners (see
        ``add_refusal_listener``). Without a writer it is written before the
        call returns, and those errors raise here.
        """
        session_id = session_id if session_id is not None else str(uuid.uuid4())
        if not self.enabled:
            return session_id
        if created_at is not None and created_at.utcoffset() is None:
            raise InvalidProgress("created_at must be an aware datetime (with a time zone)")
        change = self.engine.create(
            session_id=session_id,
            operation_id=operation_id,
            metadata=metadata,
            parent_id=parent_id,
            now=created_at if created_at is not None else self.clock.now(),
        )
        self._writes.create(change, if_absent=if_absent)
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
            if self._window_s > 0 and self._coalescer.coalesce(
                session_id, state, sub_operation_updates, metadata
            ):
                return
            if self._queue is not None and self._queue.enqueue(
                session_id, state, sub_operation_updates, metadata
            ):
                return
        eta = self._shared.calls.eta_hook(session_id) if isinstance(state, InProgress) else None
        update = functools.partial(
            self.engine.update,
            state=state,
            sub_operation_updates=tuple(sub_operation_updates),
            metadata=metadata,
            now=self.clock.now(),
        )
        self._writes.write(session_id, functools.partial(update, eta=eta), check=update)

    # -- sub-operations --------------------------------------------------------

    def add_sub_operations(self, session_id: str, sub_operations: Iterable[SubOperation]) -> None:
        if not self.enabled:
            return
        self._writes.write(
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
        self._writes.write(
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
        self._writes.write(session_id, functools.partial(method, now=self.clock.now(), **arguments))

    def apply_mutation(
        self, session_id: str, mutation: Mutation, *, deferred: bool = False
    ) -> ProgressSession | None:
        """Run an engine function on the committed session, atomically.

        What is pending for the session is written first; the mutation's
        events are published. Returns the session it leaves; None while a
        store outage buffers the write.

        With a writer thread, the write of a session this process knows is
        checked against the session as this process sees it, queued behind
        what is queued for it, and the session as it will leave it is
        returned; one that this view refuses is written at once instead (the
        store decides: a refusal raises here). ``deferred``: queued even if
        this process does not know the session, or its view refuses it (the
        store decides; a refusal is told to the refusal listeners), and None
        returned where it is not known. Without a writer it is written before
        the call returns.
        """
        if not self.enabled:
            return None
        session = self._writes.write(session_id, mutation, unchecked=deferred)
        return detached(session) if session is not None else None

    def add_refusal_listener(
        self, listener: Callable[[str, ProgressError], None]
    ) -> Callable[[], None]:
        """Call ``listener(session_id, error)`` when the store refuses a write this
        tracker queued (a creation or transition the caller did not wait for, an
        update written behind, a write replayed after an outage): the session
        was cancelled or created elsewhere meanwhile, capacity was reached.

        Called from the thread that wrote (the writer's, mostly), holding none of
        the tracker's locks: it may call the tracker. Returns what removes it.
        """
        return self._refusals.add_listener(listener)

    # -- writing out -------------------------------------------------------------

    def flush(self) -> None:
        """Write out every queued and coalesced write now, and what an outage held
        back if it can."""
        self._writes.flush()

    def health(self) -> dict[str, Any]:
        """The store's health and the outage buffer's state.

        ``status`` is ``"ok"``, or ``"degraded"`` while writes are being
        buffered (the store is unreachable, or the backlog is being replayed).
        """
        return self._committer.health()

    # -- reading -----------------------------------------------------------------

    def get_session(self, session_id: str) -> ProgressSession:
        """The session as committed, with this process's pending update applied."""
        if not self.enabled:
            raise TrackingDisabled("progress tracking is disabled (ProgressConfig.enabled=False)")
        return self._reader.get_session(session_id)

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
        return self._reader.list_sessions(
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
        return self._reader.count_sessions(
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
        return self._reader.stats()

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
        return self._hub.subscribe(session_id=session_id, event_types=event_types, since=since)

    # -- housekeeping --------------------------------------------------------------

    def cleanup_expired(self) -> CleanupResult:
        """Fail active sessions silent too long; remove finished ones past retention."""
        if not self.enabled:
            return CleanupResult()
        return self._housekeeper.cleanup_expired()

    def close(self) -> None:
        """Write what was accepted, stop background work, close what the tracker opened.

        Waits ``write_path.CLOSE_WAIT_S`` at most: for a replay of the store's
        journal under way (``JOURNAL_CLOSE_WAIT_S`` of it), then for the writes.
        What the store does not take because it is down is kept in its journal
        on this machine, for the next process that opens it; what it does not
        take because it hangs is logged as lost. Called at interpreter exit for
        every tracker still open.
        """
        if self._closed:
            return
        self._closed = True
        started_s = time.monotonic()
        self._flusher.stop()
        if self._replayer is not None:
            self._replayer.close(wait_s=JOURNAL_CLOSE_WAIT_S)
        self._writes.close(spent_s=time.monotonic() - started_s)
        self._unsubscribe_bus()
        self._hub.close()
        if self._owns_bus:
            self.bus.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _journal_of(store: Store) -> Journal | None:
    """The store's journal on this machine; None without one (or without a state
    directory: what is left at close is then logged as lost)."""
    try:
        return Journal.of(store)
    except Exception:
        logger.warning("no journal for the progress store: no state directory", exc_info=True)
        return None
