"""SQLite WAL checkpoints in a background thread, off the writers' path.

SQLite's automatic checkpoint runs inside the commit that crosses the
threshold: that one commit copies a thousand pages back into the database
and syncs it, tens of milliseconds that a progress update would wait for.
The store's connections turn the automatic checkpoint off and this thread
runs a PASSIVE checkpoint (it never blocks readers or writers) at a steady
pace instead; the sqlite3 module releases the GIL while it works.

Under a steady stream of commits a PASSIVE checkpoint never catches up with
the end of the log, and the log only starts over once one has. So when the
log has grown past ``RESTART_FRAMES``, the thread checkpoints the few frames
left while holding the process's write lock: a pause of a millisecond or so,
after which the next commit rewinds the log.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import Engine

__all__ = ["CHECKPOINT_INTERVAL_S", "RESTART_FRAMES", "WalCheckpointer"]

logger = logging.getLogger(__name__)

#: Pause between background checkpoints.
CHECKPOINT_INTERVAL_S = 0.5
#: Log length (pages) beyond which a checkpoint holds writers back to finish.
RESTART_FRAMES = 8192
#: Size the log file is cut back to after it starts over.
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


class WalCheckpointer:
    def __init__(
        self,
        engine: Engine,
        write_lock: AbstractContextManager[object],
        *,
        interval_s: float = CHECKPOINT_INTERVAL_S,
        in_use: AbstractContextManager[object] | None = None,
    ) -> None:
        """``in_use``: entered around each checkpoint, before ``write_lock`` (a fork
        waits for it: see ``sqlite_lock``)."""
        self._engine = engine
        self._write_lock = write_lock
        self._in_use = in_use if in_use is not None else nullcontext()
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ensure_running(self) -> None:
        """Start the thread on first use, and again in a forked child (threads do not fork)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._stop = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="celery-progress-wal", daemon=True
            )
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval_s):
            frames = self.checkpoint()
            if frames > RESTART_FRAMES:
                with self._in_use, self._write_lock:
                    self.checkpoint()

    def checkpoint(self) -> int:
        """Run a PASSIVE checkpoint; return the log's length in pages (0 if it failed)."""
        with self._in_use:
            return self._checkpoint()

    def _checkpoint(self) -> int:
        raw: Any = None
        try:
            raw = self._engine.raw_connection()
            connection = raw.driver_connection
            connection.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except Exception as exc:  # a failed checkpoint is retried on the next round
            logger.debug("SQLite checkpoint failed: %s", exc)
            return 0
        finally:
            if raw is not None:
                raw.close()
        return int(row[1]) if row is not None and row[1] is not None else 0

    def after_fork(self) -> None:
        """In a forked child: the parent's thread did not come along, and its lock may
        have been held; the next :meth:`ensure_running` starts a thread of this process."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._pid = 0

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout=5)
            self.checkpoint()
