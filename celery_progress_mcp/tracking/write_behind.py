"""Write-behind: writes queued, and the thread that writes them, many per transaction.

With a store that waits on I/O (the SQL store), a plain in-progress update
that the coalescing window does not absorb is checked at once against the
session as this process last wrote it, queued, and the call returns: the
task never waits on a database round trip for its progress. So are a
session's creation (checked for its ids and metadata, and against an
estimate of the active sessions: see ``Windows.active_estimate``) and
every other write of a session this process knows (a transition, a
sub-operation change, a mutation), checked against the session as the
writes queued before it leave it (one this view refuses is written in the
caller's thread instead, the store deciding: that view may be behind other
processes' writes; a refusal raises in the caller, nothing queued). This
thread then writes whatever has queued up since its last write in one
``Store.apply_many`` call (group commit), so the rate of persisted writes
is not bounded by one transaction per write. Each write still gets its
own snapshot and events, in order per session; what the store refuses is
told to the refusal listeners (:mod:`.refusals`).

A write of a session this process does not know is written in the caller's
thread, after what is queued for it (unless the caller asks for it to be
queued, unchecked). ``get_session`` in this process shows queued writes at
once, a queued creation included.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.engine import Change
from ..core.errors import InvalidProgress, ProgressError
from ..core.models import ProgressSession, SubOperationUpdate
from ..core.states import InProgress, SessionStatus
from ..store.base import Creation, Mutation
from .coalescing import own_copy
from .committing import Committer
from .held_updates import Pending, Transition, Window
from .shared_state import SharedState

__all__ = [
    "MAX_BATCH_UPDATES",
    "MAX_QUEUED_UPDATES",
    "ROOM_WAIT_S",
    "BatchWriter",
    "Deferral",
    "WriteQueue",
]

logger = logging.getLogger(__name__)

#: Updates written in one transaction at most; more wait for the next one.
MAX_BATCH_UPDATES = 250
#: Updates queued at most: past this a caller waits until the writer takes
#: its next batch (back-pressure), so memory stays bounded and every update
#: is still written.
MAX_QUEUED_UPDATES = 10_000
#: How long a caller waits for room before writing a batch itself (the
#: writer is stuck, or gone).
ROOM_WAIT_S = 5.0


class Deferral(enum.Enum):
    """What ``WriteQueue.defer`` did with a write."""

    QUEUED = "queued"
    #: Not queued (the session is not known here, or an outage holds its writes).
    WRITE_NOW = "write now"
    #: Not queued: what this process sees of the session refuses it.
    ASK_THE_STORE = "ask the store"


class WriteQueue:
    """Queues writes for its :class:`BatchWriter` and writes them in batches."""

    def __init__(self, shared: SharedState, committer: Committer) -> None:
        self._shared = shared
        self._windows = shared.windows
        self._committer = committer
        self._max_active = committer.max_active
        self.writer = BatchWriter(self.write_queued)

    def create(self, change: Change, *, if_absent: bool) -> bool:
        """Queue a new session's creation, and make its view.

        False where it must be written now, in the caller's thread: the store
        is down (the outage buffer takes it), or the estimate of active
        sessions has reached the limit (only the store can tell, once what is
        queued is written). A session this process knows is not created
        again: skipped with ``if_absent``, else refused here.
        """
        self._make_room()
        session = change.session
        with self._shared.locks.state:
            window = self._windows.get(session.id)
            if window is not None and window.session is not None:
                if if_absent:
                    return True
                raise InvalidProgress(f"a session with id {session.id!r} already exists")
            if (
                self._committer.outage.holds(session.id)
                or self._windows.active_estimate() >= self._max_active
            ):
                return False
            if window is None:
                self._windows.created(session)
            self._windows.queue(session.id, Creation(change, if_absent), session)
        self.writer.notify()
        return True

    def defer(
        self,
        session_id: str,
        mutation: Mutation,
        *,
        check: Mutation | None = None,
        unchecked: bool = False,
    ) -> tuple[Deferral, ProgressSession | None]:
        """Queue a write of a session this process knows, behind what is queued for it.

        It is first checked (``check``, or ``mutation`` where it has no side
        effects) against the session as the queued writes leave it. What that
        view refuses is not queued: the caller writes it now and the store
        decides (the view may be stale, where other processes write the
        session too), so a refused write raises in the caller and nothing of
        it is queued. ``unchecked``: queued whatever this process knows, even
        of a session it does not know (the store decides when it is written).
        Returns what became of it and, if queued, the view once it is applied
        (None where not known).
        """
        self._make_room()
        shared = self._shared
        now_s = shared.clock.monotonic()
        with shared.locks.state:
            window = self._windows.get(session_id)
            known = window is not None and window.session is not None
            if self._committer.outage.holds(session_id) or not (known or unchecked):
                return Deferral.WRITE_NOW, None
            if window is None:
                window = self._windows.unknown(session_id)
            base = window.session
            if base is not None and window.pending is not None:
                # The coalesced update came first: it goes first.
                base = shared.calls.apply_pending(base, window.pending)
                if base is None:
                    return Deferral.ASK_THE_STORE, None
            view = base
            if base is not None:
                try:
                    view = (check or mutation)(base).session
                except ProgressError:
                    if not unchecked:
                        return Deferral.ASK_THE_STORE, None
            if window.pending is not None:
                self._windows.queue(session_id, window.pending, base)
                window.pending = None
            self._windows.queue(session_id, Transition(mutation, check or mutation), view)
            window.last_write_s = now_s
        self.writer.notify()
        return Deferral.QUEUED, view

    @property
    def queued_count(self) -> int:
        """Updates queued now, across all sessions."""
        return self._windows.queued_count

    def enqueue(
        self,
        session_id: str,
        state: InProgress,
        sub_updates: Sequence[SubOperationUpdate],
        metadata: Mapping[str, Any] | None,
    ) -> bool:
        """Queue the update for the writer, checked first against the session as
        last written or queued (a bad update raises here, and nothing is queued)."""
        self._make_room()
        shared = self._shared
        now_s = shared.clock.monotonic()
        with shared.locks.state:
            window = self._windows.get(session_id)
            if (
                window is None
                or window.status != SessionStatus.IN_PROGRESS
                or self._committer.outage.engaged
            ):
                return False
            if window.pending is not None:
                # The coalesced update came first: it goes first.
                if not self._queue(session_id, window, window.pending):
                    return False
                window.pending = None
            item = Pending(state, now_s, now_s)
            if metadata:
                item.metadata = shared.engine.copy_metadata(metadata, "metadata")
            if sub_updates:
                item.add_sub_updates([own_copy(shared.engine, update) for update in sub_updates])
            self._queue(session_id, window, item, check=True)
            window.last_write_s = now_s
        self.writer.notify()
        return True

    def _make_room(self) -> None:
        if self._windows.queued_count >= MAX_QUEUED_UPDATES:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Back-pressure: the database does not keep up, so wait for the writer
        to take its next batch (or, if it does not within ``ROOM_WAIT_S``,
        write one in this thread)."""
        deadline_s = time.monotonic() + ROOM_WAIT_S
        room = self._shared.locks.room
        with room:
            while self._windows.queued_count >= MAX_QUEUED_UPDATES:
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0:
                    break
                room.wait(remaining_s)
        if self._windows.queued_count >= MAX_QUEUED_UPDATES:
            self.write_queued()

    def _queue(
        self, session_id: str, window: Window, item: Pending, *, check: bool = False
    ) -> bool:
        """Append ``item`` to the window's queue, moving its view on.

        With ``check``, what the engine refuses raises; without, it is not queued
        (False).
        """
        assert window.session is not None  # an in-progress session's
        try:
            change = self._shared.calls.update_of(item)(window.session)
        except ProgressError:
            if check:
                raise
            return False
        self._windows.queue(session_id, item, change.session)
        return True

    def write_queued(self, limit: int | None = MAX_BATCH_UPDATES) -> bool:
        """Write what is queued, up to ``limit`` writes (None: all), in one ``apply_many``.

        Returns True if some were left for another round. The state lock is
        held only to take the writes and to note what was written, not
        during the transaction: callers go on queueing meanwhile. Refusals
        are reported once no lock is held.
        """
        locks, write = self._shared.locks, self._shared.calls.write
        with locks.commit:
            with locks.state:
                runs = [
                    (session_id, [write(session_id, item) for item in items])
                    for session_id, items in self._windows.take(limit)
                ]
            with locks.room:
                locks.room.notify_all()
            self._committer.write_runs(runs, in_flight=True)
            more = self._windows.has_queued
        self._committer.refusals.report()
        return more

    def write_all(self) -> None:
        """Write everything queued now, in this thread."""
        self.write_queued(limit=None)


class BatchWriter:
    """Runs ``write`` in its own thread whenever ``notify`` says there is work.

    ``write`` takes what is queued (under the tracker's lock) and returns
    True if it left some for another round.
    """

    def __init__(self, write: Callable[[], bool]) -> None:
        self._write = write
        self._wakeup = threading.Condition(threading.Lock())
        self._requested = False
        self._stopped = False
        #: Stopping: write until nothing is left first.
        self._draining = False
        self._thread = threading.Thread(
            target=self._run, name="celery-progress-writer", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """There is work; cheap when the writer already knows."""
        if self._requested:  # a stale False only costs taking the lock
            return
        with self._wakeup:
            self._requested = True
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._requested and not self._stopped:
                    self._wakeup.wait()
                if self._stopped and not self._draining:
                    return
                self._requested = False
                draining = self._draining
            try:
                more = self._write()
            except Exception:
                logger.exception("progress writer failed")
                more = False
            if draining and not more:
                return
            if more:
                self.notify()

    def stop(self, *, drain: bool = False, timeout_s: float = 5.0) -> bool:
        """Stop the thread; with ``drain``, once it has written everything queued.

        Waits up to ``timeout_s``; returns whether the thread has ended (what is
        still queued then is the tracker's to flush).
        """
        with self._wakeup:
            self._stopped = True
            if drain and self._thread.is_alive():
                self._draining = self._requested = True
            self._wakeup.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()
