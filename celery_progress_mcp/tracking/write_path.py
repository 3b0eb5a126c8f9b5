"""Where each write goes: queued for the writer, or written now; and the last writes at close.

With a writer thread (:mod:`.write_behind`), a creation and every write of
a session this process knows are queued; what cannot be queued (the store
is down, the session is not known here, capacity may be reached, or what
this process sees of the session refuses the write: the store decides) is
written in the caller's thread by the :class:`~.committing.Committer`,
after what is queued for the session. Without a writer everything is
written in the caller's thread. Refusals the writes of this thread met on
the way are reported before the call returns (:mod:`.refusals`).

``close()`` waits for the writer to write everything queued, then writes
what is left and what an outage buffered, within ``CLOSE_WAIT_S`` in all;
what the store still does not take (it is down) is kept in the store's
journal on this machine (:mod:`.outage`, :mod:`.journal`).
"""

from __future__ import annotations

import logging
import time

from ..core.bounds import lookup_text
from ..core.engine import Change
from ..core.models import ProgressSession
from ..store.base import Mutation
from .committing import Committer
from .refusals import Refusals
from .shared_state import SharedState
from .write_behind import Deferral, WriteQueue

__all__ = ["CLOSE_WAIT_S", "WritePath"]

logger = logging.getLogger(__name__)

#: How long ``close()`` waits, at most, for what was accepted to be written
#: (the writer's last batches, then what a store outage buffered).
CLOSE_WAIT_S = 10.0


class WritePath:
    """Routes the tracker's writes; see the module's docstring."""

    def __init__(
        self,
        shared: SharedState,
        committer: Committer,
        queue: WriteQueue | None,
        refusals: Refusals,
    ) -> None:
        self._windows = shared.windows
        self._committer = committer
        self._outage = committer.outage
        self._queue = queue
        self._refusals = refusals

    def create(self, change: Change, *, if_absent: bool) -> None:
        queue = self._queue
        if queue is not None:
            if queue.create(change, if_absent=if_absent):
                return
            # Capacity may be reached: only the store can tell, once what is queued is in.
            queue.write_all()
        try:
            self._committer.create(change, if_absent=if_absent, counted=queue is not None)
        finally:
            self._refusals.report()

    def write(
        self,
        session_id: str,
        mutation: Mutation,
        *,
        check: Mutation | None = None,
        unchecked: bool = False,
    ) -> ProgressSession | None:
        """Queue the write where the writer can take it, else write it now; the
        session it leaves (as this process will see it, if queued)."""
        lookup_text(session_id, "session_id")
        precheck = True
        if self._queue is not None:
            deferral, view = self._queue.defer(
                session_id, mutation, check=check, unchecked=unchecked
            )
            if deferral is Deferral.QUEUED:
                return view
            precheck = deferral is not Deferral.ASK_THE_STORE
        try:
            return self._committer.commit(session_id, mutation, check=check, precheck=precheck)
        finally:
            self._refusals.report()

    def flush(self) -> None:
        if self._queue is not None:
            self._queue.write_all()
        self._committer.flush_pending()
        self._refusals.report()
        if self._outage.pending_sessions():
            self._outage.drain()

    def close(self, *, spent_s: float = 0.0) -> None:
        """Write what was accepted, within ``CLOSE_WAIT_S`` (less ``spent_s``, the part
        of it the tracker's close already took); keep in the journal, or log as lost,
        what could not be."""
        wait_s = max(0.0, CLOSE_WAIT_S - spent_s)
        deadline_s = time.monotonic() + wait_s
        written = True
        if self._queue is not None:
            written = self._queue.writer.stop(drain=True, timeout_s=wait_s)
        if written:
            self.flush()
        else:
            # The writer is stuck in the store (which holds the commit lock): waiting
            # on it here would not be bounded.
            logger.error(
                "the progress store did not take the queued writes within %s s at close: "
                "%d queued writes lost",
                wait_s,
                self._windows.queued_count,
            )
        self._outage.close(deadline_s=max(0.0, deadline_s - time.monotonic()))
