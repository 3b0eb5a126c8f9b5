"""Riding out a store outage: writes are queued, in order, and replayed on reconnect.

When the store raises :class:`StoreUnavailable`, the tracker hands the write
to an :class:`OutageBuffer` and returns: progress tracking never fails the
task. From then on every write of that session joins the session's queue
behind it (order within a session is what matters), and while the store is
known to be down every write is queued without trying the store, so a task
does not wait on a dead connection per update. A background thread retries
with exponential backoff and replays the queues in order once the store
answers; ``tracker.flush()`` tries at once.

The buffer is bounded. When it fills up, runs of plain in-progress updates
of a session are merged into the latest of the run (its sub-operation
updates and metadata included), as the coalescing window would have done,
and every transition is kept. Only if transitions alone fill it is the
incoming write dropped. Merged and dropped writes are counted and logged;
:meth:`OutageBuffer.report` feeds ``tracker.health()``.

A buffered write that the store refuses on replay (the session was
cancelled elsewhere meanwhile, or capacity was reached) is logged and
counted, like a refused coalesced update: the task is long past the call
(the tracker's refusal listeners are told, see :mod:`.refusals`).

At close, what the store still has not taken is kept in the store's journal
on this machine (:mod:`.journal`), for the next process that opens the
store there, after ``JOURNAL_AFTER_S`` of retrying; without a journal (a
store whose data does not outlive the process) it is retried until the
close's deadline, then logged as lost. A write that is not data (a function
given to ``apply_mutation``, a sweep's decision) cannot be kept: it is lost,
and logged.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..core.engine import Change
from ..core.errors import ProgressError, StoreUnavailable
from ..core.models import SubOperationState, SubOperationUpdate
from ..core.states import InProgress
from ..store.base import Creation, Mutation, Write
from .journal import Journal

__all__ = [
    "DEFAULT_OUTAGE_CAPACITY",
    "JOURNAL_AFTER_S",
    "BufferedWrite",
    "OutageBuffer",
    "merge_updates",
]

logger = logging.getLogger(__name__)

#: Writes buffered across all sessions before runs of updates are merged.
DEFAULT_OUTAGE_CAPACITY = 10_000
#: First and longest pause between reconnection attempts.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 5.0
#: How long ``close()`` retries a store that is down before it keeps what is left
#: in the journal: short, so a stopping worker is not held up (a pool process
#: gets ``celery.integration.STOP_WAIT_S`` in all).
JOURNAL_AFTER_S = 2.0

_COALESCIBLE_SUB_STATES = frozenset({None, SubOperationState.ACTIVE})


@dataclass(slots=True)
class BufferedWrite:
    """One write the store could not take: a creation or a mutation."""

    session_id: str
    mutation: Mutation | None = None
    creation: Creation | None = None
    #: A plain in-progress update: later ones of the same run supersede it.
    coalescible: bool = False


#: Writes a buffered entry to the store (and publishes its events); raises
#: ``StoreUnavailable`` while the store is down.
Replay = Callable[[BufferedWrite], None]


def merge_updates(older: Mutation, newer: Mutation) -> Mutation:
    """One ``Engine.update`` call doing what ``older`` then ``newer`` would.

    The newer state, time and ETA win; sub-operation updates and metadata
    merge, newer values over older ones (as the coalescing window merges).
    """
    assert isinstance(older, functools.partial)
    assert isinstance(newer, functools.partial)
    subs: dict[str, SubOperationUpdate] = {}
    for update in (
        *older.keywords.get("sub_operation_updates", ()),
        *newer.keywords.get("sub_operation_updates", ()),
    ):
        earlier = subs.get(update.id)
        if earlier is not None:
            update = SubOperationUpdate(
                id=update.id,
                state=update.state or earlier.state,
                percentage=(
                    update.percentage if update.percentage is not None else earlier.percentage
                ),
                metadata={**earlier.metadata, **update.metadata},
                error=update.error if update.error is not None else earlier.error,
            )
        subs[update.id] = update
    metadata = {**(older.keywords.get("metadata") or {}), **(newer.keywords.get("metadata") or {})}
    keywords = {
        **newer.keywords,
        "sub_operation_updates": tuple(subs.values()),
        "metadata": metadata or None,
    }
    return functools.partial(newer.func, *newer.args, **keywords)


class OutageBuffer:
    """Per-session ordered queues of the writes a store outage held back."""

    def __init__(
        self,
        replay: Replay,
        lock: threading.RLock,
        *,
        probe: Callable[[], bool],
        update_function: Callable[..., Change],
        capacity: int = DEFAULT_OUTAGE_CAPACITY,
        background: bool = True,
        after_replay: Callable[[], None] | None = None,
        journal: Journal | None = None,
        reconnected: Callable[[], None] | None = None,
    ) -> None:
        """``after_replay``: called after each round of replays, holding no lock (to
        report the writes the store refused). ``journal``: where what is left at
        close is kept. ``reconnected``: called, holding no lock, once the store
        answers again and every buffered write is replayed."""
        self._replay = replay
        self._after_replay = after_replay
        self._journal = journal
        self._reconnected = reconnected
        #: Whether the store answers; called without the lock, so a store that
        #: hangs holds up only the retrying thread, never the task.
        self._probe = probe
        #: The tracker's lock: queue changes and replays are ordered with its commits.
        self._lock = lock
        self._update_function = update_function
        self._capacity = capacity
        self._queues: OrderedDict[str, deque[BufferedWrite]] = OrderedDict()
        self._size = 0
        #: Compacting again finds nothing new unless writes were appended since.
        self._appended_since_compaction = 0
        #: The store is known to be down: queue every write without trying it.
        self.engaged = False
        self._since: datetime | None = None
        self._last_error = ""
        self._merged = 0
        self._dropped = 0
        self._refused = 0
        self._replayed = 0
        self._journalled = 0
        #: Retry in a thread of our own; without, only ``drain()`` calls retry.
        self._background = background
        self._thread: threading.Thread | None = None
        self._wakeup = threading.Event()
        self._closed = False

    # -- queueing --------------------------------------------------------------

    def holds(self, session_id: str) -> bool:
        """Whether a write for ``session_id`` must be queued rather than tried."""
        return self.engaged or session_id in self._queues

    def add(self, session_id: str, write: Write, error: StoreUnavailable | None = None) -> None:
        """Queue ``write`` behind what is buffered for ``session_id``; ``error``: the
        store's, which engages the buffer."""
        if isinstance(write, Creation):
            self._add(BufferedWrite(session_id, creation=write), error)
        else:
            coalescible = self._is_plain_update(write)
            self._add(BufferedWrite(session_id, write, coalescible=coalescible), error)

    def _add(self, write: BufferedWrite, error: StoreUnavailable | None) -> None:
        with self._lock:
            if error is not None:
                self._engage(error)
            self._start_retrying()
            if self._size >= self._capacity and self._appended_since_compaction:
                self._compact()
            if self._size >= self._capacity:
                if self._merge_into_last(write):
                    return
                self._dropped += 1
                logger.error(
                    "progress store outage: buffer full (%d writes), dropped a write of %s",
                    self._size,
                    write.session_id,
                )
                return
            self._queues.setdefault(write.session_id, deque()).append(write)
            self._size += 1
            self._appended_since_compaction += 1

    def _is_plain_update(self, mutation: Mutation) -> bool:
        if not isinstance(mutation, functools.partial) or mutation.func != self._update_function:
            return False
        if not isinstance(mutation.keywords.get("state"), InProgress):
            return False
        return all(
            update.state in _COALESCIBLE_SUB_STATES
            for update in mutation.keywords.get("sub_operation_updates", ())
        )

    def _merge_into_last(self, write: BufferedWrite) -> bool:
        queue = self._queues.get(write.session_id)
        if not queue or not _absorb(queue[-1], write):
            return False
        self._merged += 1
        return True

    def _compact(self) -> None:
        """Merge every run of consecutive plain updates into its latest."""
        before = self._size
        for session_id, queue in self._queues.items():
            compacted: deque[BufferedWrite] = deque()
            for write in queue:
                if not compacted or not _absorb(compacted[-1], write):
                    compacted.append(write)
            self._queues[session_id] = compacted
        self._size = sum(len(queue) for queue in self._queues.values())
        self._appended_since_compaction = 0
        self._merged += before - self._size
        logger.warning(
            "progress store outage: buffer full, merged %d in-progress updates (%d writes kept)",
            before - self._size,
            self._size,
        )

    def _engage(self, error: StoreUnavailable) -> None:
        self._last_error = str(error)
        if not self.engaged:
            self.engaged = True
            self._since = datetime.now(UTC)
            logger.warning("progress store unavailable, buffering writes: %s", error)

    # -- replaying ---------------------------------------------------------------

    def drain(self) -> bool:
        """Replay every queued write in order; False if the store is still down."""
        if self.engaged and not self._probe():
            return False
        was_engaged = self.engaged
        try:
            replayed = self._replay_all()
        finally:
            if self._after_replay is not None:
                self._after_replay()
        if replayed and was_engaged and self._reconnected is not None and not self._closed:
            self._reconnected()
        return replayed

    def _replay_all(self) -> bool:
        while True:
            with self._lock:
                if not self._queues:
                    if self.engaged:
                        logger.warning(
                            "progress store reachable again; %d buffered writes replayed",
                            self._replayed,
                        )
                    self.engaged = False
                    self._since = None
                    return True
                session_id, queue = next(iter(self._queues.items()))
                write = queue[0]
                try:
                    self._replay(write)
                except StoreUnavailable as exc:
                    self._engage(exc)
                    return False
                except ProgressError as exc:
                    self._refused += 1
                    logger.warning(
                        "buffered progress write of %s refused on replay: %s", session_id, exc
                    )
                else:
                    self._replayed += 1
                queue.popleft()
                self._size -= 1
                if not queue:
                    del self._queues[session_id]

    def _start_retrying(self) -> None:
        if not self._background or self._closed:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._wakeup.clear()
        self._thread = threading.Thread(
            target=self._retry_loop, name="celery-progress-outage", daemon=True
        )
        self._thread.start()

    def _retry_loop(self) -> None:
        pause_s = RETRY_FIRST_S
        while not self._closed:
            self._wakeup.wait(pause_s)
            if self._closed:
                return
            try:
                if self.drain():
                    return
            except Exception:
                logger.exception("replaying buffered progress writes failed")
            pause_s = min(pause_s * 2, RETRY_MAX_S)

    def close(self, *, deadline_s: float = 5.0) -> None:
        """Try to replay what is left (for ``deadline_s``, or ``JOURNAL_AFTER_S`` with a
        journal); keep the rest in the journal; log what is lost."""
        wait_s = deadline_s if self._journal is None else min(deadline_s, JOURNAL_AFTER_S)
        end_s = time.monotonic() + wait_s
        while self._queues and time.monotonic() < end_s:
            if self.drain():
                break
            time.sleep(min(RETRY_FIRST_S * 4, max(0.0, end_s - time.monotonic())))
        self._closed = True
        self._wakeup.set()
        if not self._queues:
            return
        # Taken under the lock: the retrying thread may be replaying one still. If it
        # holds the lock past the deadline, the store hangs rather than refuses: what
        # is left is lost (the journal is for a store that is down).
        if not self._lock.acquire(timeout=max(0.0, end_s - time.monotonic()) + 0.5):
            self._lose(self._size, len(self._queues), ": the store hangs")
            return
        try:
            left = [
                (session_id, write.creation if write.creation is not None else write.mutation)
                for session_id, queue in self._queues.items()
                for write in queue
            ]
            sessions = len(self._queues)
            self._queues.clear()
            self._size = 0
        finally:
            self._lock.release()
        if left:
            self._keep(left, sessions)

    def _keep(self, left: list[tuple[str, Write | None]], sessions: int) -> None:
        """Keep what the store did not take in the journal, or log it as lost."""
        writes = [(session_id, write) for session_id, write in left if write is not None]
        if self._journal is None:
            self._lose(len(left), sessions, "")
            return
        try:
            kept = self._journal.keep(writes)
        except OSError as exc:
            self._lose(len(left), sessions, f": the journal could not be written ({exc})")
            return
        self._journalled += kept.kept
        if kept.kept:
            logger.warning(
                "progress store still unavailable at close: %d buffered writes of %d sessions "
                "kept in %s, for the next process that opens the store on this machine",
                kept.kept,
                sessions,
                kept.path,
            )
        if kept.left_out:
            self._lose(
                kept.left_out,
                sessions,
                ": they are functions (given to apply_mutation, or a sweep's), not data",
            )

    def _lose(self, count: int, sessions: int, why: str) -> None:
        self._dropped += count
        logger.error(
            "progress store still unavailable at close: %d buffered writes of %d sessions lost%s",
            count,
            sessions,
            why,
        )

    # -- reporting ----------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "engaged": self.engaged,
                "since": self._since.isoformat() if self._since else None,
                "buffered": self._size,
                "sessions": len(self._queues),
                "replayed": self._replayed,
                "merged": self._merged,
                "dropped": self._dropped,
                "journalled": self._journalled,
                "refused_on_replay": self._refused,
                "last_error": self._last_error or None,
            }

    def pending_sessions(self) -> Iterable[str]:
        return tuple(self._queues)


def _absorb(last: BufferedWrite, write: BufferedWrite) -> bool:
    """Merge plain update ``write`` into plain update ``last``, if both are."""
    if not (last.coalescible and write.coalescible):
        return False
    if last.mutation is None or write.mutation is None:
        return False
    last.mutation = merge_updates(last.mutation, write.mutation)
    return True
