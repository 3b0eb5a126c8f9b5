"""Write-behind: the thread that writes queued progress updates, many per transaction.

With a store that waits on I/O (the SQL store), a plain in-progress update
that the coalescing window does not absorb is checked at once against the
session as this process last wrote it, queued, and the call returns: the
task never waits on a database round trip for its progress. This thread
then writes whatever has queued up since its last write in one
``Store.apply_many`` call (group commit), so the rate of persisted updates
is not bounded by one transaction per update. Each update still gets its
own snapshot and event, in order.

Transitions are written in the caller's thread, as before; they first
write what is queued for their session, so order is kept. ``get_session``
in this process shows queued updates at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["MAX_BATCH_UPDATES", "MAX_QUEUED_UPDATES", "ROOM_WAIT_S", "BatchWriter"]

logger = logging.getLogger(__name__)

#: Updates written in one transaction at most; more wait for the next one.
MAX_BATCH_UPDATES = 250
#: Updates queued at most: past this a caller waits until the writer takes
#: its next batch (back-pressure), so memory stays bounded and every update
#: is still written.
MAX_QUEUED_UPDATES = 10_000
#: How long a caller waits for room before writing a batch itself (the
#: writer is stuck, or gone: a fork without a new tracker).
ROOM_WAIT_S = 5.0


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
