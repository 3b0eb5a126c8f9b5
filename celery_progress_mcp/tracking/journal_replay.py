"""Writing a store's journal: what processes that closed while it was down kept.

A tracker over a store with a journal (:mod:`.journal`) writes its files:
when it is made (so a Celery client's ``install(app)``, or the next worker,
writes what the last one kept), after an outage of its own ends, and with
every periodic cleanup (``cleanup_interval_seconds``), in a thread of its
own (without threads, in the caller's). Making a tracker never waits on the
store; closing one waits, within a bound, for a replay under way.

Each file is claimed (so no two processes write it), decoded, and its
writes applied in one transaction through the tracker's committer
(``Store.apply_many``: the normal store path, each session's writes in
order, each with its snapshot and events, published on the bus); the file
is removed once that transaction has committed. A creation of a session
that exists is skipped (every journalled creation counts as
``if_absent``); a write the store refuses (the session moved on: ended,
cancelled, by the liveness sweep or another process) is dropped with the
rest of its session's writes, and logged, as a refused queued write is.
While the store is down the file is let go, for a later try. A file this
process cannot read (a newer version, a call it has not registered) is left
for another; one no version can read is set aside (renamed
``*.unreadable``) and logged.

A replayer that dies between its commit and the file's removal leaves the
file to be written again: its creations are then skipped and its
transitions refused, but its progress updates are written twice (the
session's events show each update twice; its end is not changed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..core.engine import Engine
from ..core.errors import StoreUnavailable
from ..store.base import Applied, Creation, Write
from .journal import Claim, Journal
from .journal_codec import NotReadableHere, UnreadableJournal, decode_journal

__all__ = ["JournalReplayer", "Replay"]

logger = logging.getLogger(__name__)

#: Writes sessions' runs in one transaction (``Committer.replay``); raises
#: ``StoreUnavailable`` if nothing was written.
Replay = Callable[[list[tuple[str, list[Write]]]], list[Applied]]


class JournalReplayer:
    """Writes the journal's files; see the module's docstring."""

    def __init__(
        self, journal: Journal, replay: Replay, engine: Engine, *, background: bool
    ) -> None:
        self.journal = journal
        self._replay = replay
        self._engine = engine
        self._background = background
        #: One replay at a time in this tracker.
        self._running = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Write what the journal holds: in a thread (or now, without threads), if
        a file waits and no replay is under way."""
        if self._closed or not self.journal.pending():
            return
        if not self._background:
            self.replay()
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        self._thread = threading.Thread(
            target=self._run, name="celery-progress-journal", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self.replay()
        except Exception:
            logger.exception("writing the progress journal failed")

    def replay(self) -> bool:
        """Write every file that can be claimed, oldest first; False if the store was
        down (the files are left for later)."""
        if not self._running.acquire(blocking=False):
            return True  # a replay is under way
        try:
            for path in self.journal.pending():
                if self._closed:
                    break
                claim = self.journal.claim(path)
                if claim is None:
                    continue  # another process writes it, or has
                if not self._replay_file(claim):
                    return False
            return True
        finally:
            self._running.release()

    def _replay_file(self, claim: Claim) -> bool:
        """Write one claimed file; False if the store is down (it is let go)."""
        try:
            writes = decode_journal(claim.read(), self.journal.store, self._engine)
            results = self._replay(_runs(writes))
        except StoreUnavailable:
            claim.release()
            return False
        except NotReadableHere as exc:
            logger.info("progress journal %s left for another process: %s", claim.path, exc)
            claim.release()
            return True
        except UnreadableJournal as exc:
            logger.error("progress journal %s cannot be read, set aside: %s", claim.path, exc)
            claim.set_aside()
            return True
        except Exception:
            if self._closed:  # the tracker closed its store under this replay
                claim.release()
                return False
            logger.exception("progress journal %s could not be written, set aside", claim.path)
            claim.set_aside()
            return True
        claim.done()
        sessions = len(results)
        refused = [result for result in results if result.error is not None]
        for result in refused:
            logger.warning(
                "journalled progress writes of %s refused by the store (%s): the write "
                "and the %d after it dropped",
                result.session_id,
                result.error,
                _run_length(writes, result.session_id) - result.applied - 1,
            )
        logger.info(
            "progress journal %s written: %d writes of %d sessions",
            claim.path,
            len(writes),
            sessions,
        )
        return True

    def close(self, *, wait_s: float) -> None:
        """Wait up to ``wait_s`` for a replay under way (a process that has just made
        its tracker writes the journal before it exits), then start no more."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=wait_s)
        self._closed = True


def _runs(writes: list[tuple[str, Write]]) -> list[tuple[str, list[Write]]]:
    """The writes per session, each session's in order; creations skipped where the
    session exists."""
    runs: dict[str, list[Write]] = {}
    for session_id, write in writes:
        if isinstance(write, Creation) and not write.if_absent:
            write = Creation(write.change, if_absent=True)
        runs.setdefault(session_id, []).append(write)
    return list(runs.items())


def _run_length(writes: list[tuple[str, Write]], session_id: str) -> int:
    return sum(1 for written_for, _ in writes if written_for == session_id)
