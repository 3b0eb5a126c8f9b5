"""Write-behind: plain updates queued, and the thread that writes them, many per transaction.

With a store that waits on I/O (the SQL store), a plain in-progress update
that the coalescing window does not absorb is checked at once against the
session as this process last wrote it, queued, and the call returns: the
task never waits on a database round trip for its progress. This thread
then writes whatever has queued up since its last write in one
``Store.apply_many`` call (group commit), so the rate of persisted updates
is not bounded by one transaction per update. Each update still gets its
own snapshot and event, in order.

Transitions are written in the caller's thread; they first
write what is queued for their session, so order is kept. ``get_session``
in this process shows queued updates at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.errors import ProgressError
from ..core.models import SubOperationUpdate
from ..core.states import InProgress, SessionStatus
from .coalescing import own_copy
from .committing import Committer
from .held_updates import Pending, Window
from .shared_state import SharedState

__all__ = [
    "MAX_BATCH_UPDATES",
    "MAX_QUEUED_UPDATES",
    "ROOM_WAIT_S",
    "BatchWriter",
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


class WriteQueue:
    """Queues plain updates for its :class:`BatchWriter` and writes them in batches."""

    def __init__(self, shared: SharedState, committer: Committer) -> None:
        self._shared = shared
        self._windows = shared.windows
        self._committer = committer
        self.writer = BatchWriter(self.write_queued)

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
        if self._windows.queued_count >= MAX_QUEUED_UPDATES:
            self._wait_for_room()
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
        try:
            change = self._shared.calls.update_of(item)(window.session)
        except ProgressError:
            if check:
                raise
            return False
        self._windows.queue(session_id, item, change.session)
        return True

    def write_queued(self, limit: int | None = MAX_BATCH_UPDATES) -> bool:
        """Write what is queued, up to ``limit`` updates (None: all), in one ``apply_many``.

        Returns True if some were left for another round. The state lock is
        held only to take the updates and to note what was written, not
        during the transaction: callers go on queueing meanwhile.
        """
        locks, mutation = self._shared.locks, self._shared.calls.mutation
        with locks.commit:
            with locks.state:
                runs = [
                    (session_id, [mutation(session_id, item) for item in items])
                    for session_id, items in self._windows.take(limit)
                ]
            with locks.room:
                locks.room.notify_all()
            self._committer.write_runs(runs, in_flight=True)
            return self._windows.has_queued

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
                if self._stopped:
                    return
                self._requested = False
            try:
                more = self._write()
            except Exception:
                logger.exception("progress writer failed")
                more = False
            if more:
                self.notify()

    def stop(self) -> None:
        """Stop the thread (what is still queued is the tracker's to flush)."""
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
