"""Liveness: no session stays in progress after its worker died.

Workers heartbeat the sessions of the tasks they run (:meth:`Liveness.heartbeat`,
called by the worker's ticker, see :mod:`.worker_runtime`). A sweep, run by
every worker's main process and by any monitor (``sessions watch``, or
``start_liveness_monitor(app)`` in a process of your own),
fails a started task's session whose heartbeat is older than
``heartbeat_timeout_seconds`` with error_code ``"WORKER_LOST"``: the pool
process or the whole worker was killed, or its machine is gone. (A pool
process that dies while its worker lives is reported at once by Celery
itself, as ``WorkerLostError``.)

Not swept: queued tasks (no worker yet), tasks waiting for a retry's
countdown, group/chord/chain sessions (they end with their members), and
tasks that acknowledge late (``acks_late``): the broker delivers those
again, and the new run continues the session. Whatever is left active and
silent beyond ``session_timeout_seconds`` is failed "TIMEOUT" by the
tracker's own cleanup.

Before a silent session is failed, Celery's result backend is asked
(:mod:`.outcomes`): a task it knows as ended (SUCCESS, FAILURE, REVOKED)
ends so instead, since only its end's write was lost, not its worker's work.

Several sweepers may race: the failure is an engine function that checks
the heartbeat again inside the store's transaction, so a session is failed
once, and never one whose worker just sent a heartbeat.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from ..core.engine import Change, Engine
from ..core.errors import InvalidTransition, ProgressError, SessionNotFound
from ..core.models import ProgressSession, SubOperationState
from ..core.states import Cancelled, Completed, Failed, SessionStatus
from ..store.base import Mutation, SessionQuery
from .canvas import Member, MemberChange, Rollup
from .metadata_keys import ACKS_LATE, KIND, KIND_TASK, PID, WORKER
from .outcomes import BackendOutcomes, Outcome
from .safe_sessions import SafeSessions
from .worker_runtime import Running

__all__ = ["Liveness", "LivenessMonitor", "lost_worker_mutation", "told_end_mutation"]

logger = logging.getLogger(__name__)

#: Sweeps per ``heartbeat_timeout_seconds``.
SWEEPS_PER_TIMEOUT = 4
#: Sessions read per page while sweeping.
SWEEP_PAGE = 500
_RUNNING = (SessionStatus.IN_PROGRESS, SessionStatus.PAUSED)


def _is_candidate(session: ProgressSession) -> bool:
    metadata = session.metadata
    return (
        metadata.get(KIND) == KIND_TASK
        and bool(metadata.get(WORKER))
        and not metadata.get(ACKS_LATE)
    )


def _require_silent(session: ProgressSession, now: datetime, timeout: timedelta) -> datetime:
    """The session's last sign of life, if it is a running task silent for ``timeout``."""
    if session.state.status not in _RUNNING or not _is_candidate(session):
        raise InvalidTransition(f"session {session.id!r} is not a running task")
    last = session.heartbeat_at or session.updated_at
    if now - last < timeout:
        raise InvalidTransition(f"session {session.id!r} is alive")
    return last


def told_end_mutation(
    engine: Engine, now: datetime, timeout: timedelta, outcome: Outcome
) -> Mutation:
    """End the session as the result backend says, if, in the store, it is still silent."""

    def mutate(session: ProgressSession) -> Change:
        _require_silent(session, now, timeout)
        return outcome.ending(engine, session, now)

    return mutate


def lost_worker_mutation(engine: Engine, now: datetime, timeout: timedelta) -> Mutation:
    """Fail the session "WORKER_LOST" if, in the store, it is still silent too long."""

    def mutate(session: ProgressSession) -> Change:
        last = _require_silent(session, now, timeout)
        worker = session.metadata.get(WORKER)
        pid = session.metadata.get(PID)
        seconds = round((now - last).total_seconds(), 1)
        message = (
            f"worker {worker} (pool process {pid}) sent no heartbeat for {seconds} s "
            "(the limit is heartbeat_timeout_seconds): presumed dead"
        )
        return engine.fail(session, message, "WORKER_LOST", now=now)

    return mutate


class Liveness:
    """Heartbeats from the worker, sweeps for the dead, and the thread that sweeps."""

    def __init__(
        self,
        sessions: SafeSessions,
        rollup: Rollup,
        heartbeat_timeout_s: float,
        outcomes: BackendOutcomes,
    ) -> None:
        self._sessions = sessions
        self._tracker = sessions.tracker
        self._rollup = rollup
        self._outcomes = outcomes
        self._timeout = timedelta(seconds=heartbeat_timeout_s)
        self._monitor: LivenessMonitor | None = None
        self._lock = threading.Lock()

    def heartbeat(self, running: Running) -> None:
        """Mark a running task's session (and its parent's) alive; the worker's ticker calls it.

        A heartbeat refused because the session ended elsewhere (cancelled,
        swept) tells the task so.
        """
        tracker = self._tracker
        try:
            tracker.heartbeat(running.session_id)
        except (InvalidTransition, SessionNotFound):
            session = self._sessions.committed(running.session_id)
            if session is None or isinstance(session.state, Cancelled):
                running.cancelled = True
                running.cancel_reason = getattr(session.state, "reason", "") if session else ""
            return
        if running.parent_id is not None:
            with contextlib.suppress(ProgressError):
                tracker.heartbeat(running.parent_id)

    def sweep(self) -> list[str]:
        """Fail the sessions whose worker died; returns their ids.

        The silent sessions of a page are asked about in one call to the
        result backend; those it knows ended end so, and are not returned.
        """
        tracker = self._tracker
        timeout = self._timeout
        now = tracker.clock.now()
        cutoff = now - timeout
        failed: list[str] = []
        offset = 0
        while True:
            page = tracker.store.list_sessions(
                SessionQuery(statuses=_RUNNING, limit=SWEEP_PAGE, offset=offset)
            )
            silent = [
                session
                for session in page
                if (session.heartbeat_at or session.updated_at) < cutoff and _is_candidate(session)
            ]
            outcomes = self._outcomes.ask([session.id for session in silent])
            for session in silent:
                outcome = outcomes.get(session.id)
                if outcome is not None:
                    mutation = told_end_mutation(tracker.engine, now, timeout, outcome)
                    if self._end(session, mutation) is not None:
                        logger.warning(
                            "progress session %s ended %s: its end was missing from the store, "
                            "the result backend had it",
                            session.id,
                            outcome.state,
                        )
                    continue
                lost = lost_worker_mutation(tracker.engine, now, timeout)
                if self._end(session, lost) is not None:
                    failed.append(session.id)
                    logger.warning("progress session %s failed: its worker is gone", session.id)
            if len(page) < SWEEP_PAGE:
                return failed
            offset += SWEEP_PAGE

    def _end(self, session: ProgressSession, mutation: Mutation) -> ProgressSession | None:
        """Apply a sweep's ending; tell the parent. None if refused (alive, ended) or buffered."""
        try:
            ended = self._tracker.apply_mutation(session.id, mutation)
        except InvalidTransition:
            return None  # alive again, or finished meanwhile
        except Exception:
            logger.exception("liveness sweep could not end session %s", session.id)
            return None
        if ended is not None and ended.parent_id is not None:
            self._rollup.member_changed(ended.parent_id, _member_end(session, ended))
        return ended

    def start(self) -> None:
        """Sweep from this process every ``heartbeat_timeout_seconds / 4`` (idempotent)."""
        with self._lock:
            if self._monitor is None:
                interval_s = self._timeout.total_seconds() / SWEEPS_PER_TIMEOUT
                self._monitor = LivenessMonitor(self.sweep, interval_s)
                self._monitor.start()

    def stop(self) -> None:
        with self._lock:
            monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop()

    def after_fork(self) -> None:
        """In a forked child: the parent's sweeping thread did not come along."""
        self._monitor = None
        self._lock = threading.Lock()


def _member_end(session: ProgressSession, ended: ProgressSession) -> MemberChange:
    """A swept member's end, as its parent records it."""
    member = Member(session.id, session.operation_id)
    state = ended.state
    if isinstance(state, Completed):
        return MemberChange(member, SubOperationState.COMPLETED, 100.0)
    if isinstance(state, Failed):
        return MemberChange(member, SubOperationState.FAILED, error=state.error_message)
    return MemberChange(member, SubOperationState.CANCELLED)


class LivenessMonitor:
    """A daemon thread that calls ``sweep`` every ``interval_s``."""

    def __init__(self, sweep: Callable[[], object], interval_s: float) -> None:
        self._sweep = sweep
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="celery-progress-liveness", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._sweep()
            except Exception:
                logger.exception("liveness sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
