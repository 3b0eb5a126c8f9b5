"""Housekeeping: sessions silent too long fail, finished ones go after retention.

``cleanup_expired`` runs every ``cleanup_interval_seconds`` (from the
flusher's thread, see :mod:`.flusher`) and on demand. An active session
whose last heartbeat is older than ``session_timeout_seconds`` is failed
with error_code ``"TIMEOUT"``, unless the tracker's ``may_time_out`` hook
spares it (the Celery integration spares tasks still queued) or ends it
otherwise (the Celery integration, a task whose end its result backend
knows). A
finished session past ``finished_retention_seconds`` is removed, with a
``SessionExpired`` event, and so are logged events that old.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..core.clock import Clock
from ..core.config import ProgressConfig
from ..core.engine import Change, Engine
from ..core.errors import InvalidTransition, ProgressError
from ..core.models import ProgressSession
from ..core.states import Failed
from ..store.base import Store
from .committing import Committer

__all__ = ["CleanupResult", "Housekeeper", "MayTimeOut"]

logger = logging.getLogger(__name__)

#: The error code of a session failed for its silence.
TIMEOUT_CODE = "TIMEOUT"

#: Whether a session silent too long may be failed with "TIMEOUT": True, False
#: (it is spared), or the change that ends it instead (its end is known
#: elsewhere). Called in the session's write transaction, on the session as stored.
MayTimeOut = Callable[[ProgressSession], bool | Change]


@dataclass(frozen=True, slots=True)
class CleanupResult:
    #: Active sessions failed with error_code "TIMEOUT".
    timed_out: list[str] = field(default_factory=list)
    #: Finished sessions removed after the retention window.
    removed: int = 0


class Housekeeper:
    """Runs the cleanup; ``flush`` writes out what the tracker holds back first."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        clock: Clock,
        config: ProgressConfig,
        committer: Committer,
        flush: Callable[[], None],
        may_time_out: MayTimeOut | None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._clock = clock
        self._timeout = timedelta(seconds=config.session_timeout_seconds)
        self._retention = timedelta(seconds=config.finished_retention_seconds)
        self._committer = committer
        self._flush = flush
        self._may_time_out = may_time_out

    def cleanup_expired(self) -> CleanupResult:
        """Fail active sessions silent too long; remove finished ones past retention."""
        # A pending update is a sign of life: written first, it refreshes the heartbeat.
        self._flush()
        now = self._clock.now()
        timed_out = []
        for session_id in self._store.stale_sessions(now - self._timeout):
            try:
                ended = self._committer.commit(
                    session_id, functools.partial(self._time_out, now=now)
                )
            except ProgressError:
                continue  # finished, refreshed or spared meanwhile
            if ended is None or _timed_out(ended):  # None: buffered by an outage
                timed_out.append(session_id)
        removed = self._committer.purge_finished(now - self._retention)
        self._store.purge_events(now - self._retention)
        return CleanupResult(timed_out=timed_out, removed=removed)

    def _time_out(self, session: ProgressSession, *, now: datetime) -> Change:
        last = session.heartbeat_at or session.updated_at
        if now - last < self._timeout:
            raise InvalidTransition(f"session {session.id!r} is alive again")
        verdict = True if self._may_time_out is None else self._may_time_out(session)
        if isinstance(verdict, Change):
            return verdict
        if not verdict:
            raise InvalidTransition(f"session {session.id!r} is spared from timing out")
        seconds = int(self._timeout.total_seconds())
        return self._engine.fail(
            session, f"no progress reported for {seconds} s", TIMEOUT_CODE, now=now
        )

    def run_periodically(self) -> None:
        """The flusher's periodic call: a failure is logged, and the next one tries again."""
        try:
            self.cleanup_expired()
        except Exception:
            logger.exception("progress cleanup failed")


def _timed_out(session: ProgressSession) -> bool:
    return isinstance(session.state, Failed) and session.state.error_code == TIMEOUT_CODE
