"""Liveness: no session stays in progress after its worker died.

Workers heartbeat the sessions of the tasks they run (see :mod:`.runtime`).
A sweep, run by every worker's main process and by any monitor (``sessions
watch``, or ``start_liveness_monitor(app)`` in a process of your own),
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

Several sweepers may race: the failure is an engine function that checks
the heartbeat again inside the store's transaction, so a session is failed
once, and never one whose worker just sent a heartbeat.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..core.engine import Change, Engine
from ..core.errors import InvalidTransition
from ..core.models import ProgressSession, SubOperationState
from ..core.states import SessionStatus
from ..store.base import Mutation, SessionQuery
from . import keys
from .canvas import Member, MemberChange

if TYPE_CHECKING:
    from celery import Celery

    from .integration import Integration

__all__ = ["LivenessMonitor", "lost_worker_mutation", "start_liveness_monitor", "sweep"]

logger = logging.getLogger(__name__)

#: Sweeps per ``heartbeat_timeout_seconds``.
SWEEPS_PER_TIMEOUT = 4
#: Sessions read per page while sweeping.
SWEEP_PAGE = 500
_RUNNING = (SessionStatus.IN_PROGRESS, SessionStatus.PAUSED)


def _is_candidate(session: ProgressSession) -> bool:
    metadata = session.metadata
    return (
        metadata.get(keys.KIND) == keys.KIND_TASK
        and bool(metadata.get(keys.WORKER))
        and not metadata.get(keys.ACKS_LATE)
    )


def lost_worker_mutation(engine: Engine, now: datetime, timeout: timedelta) -> Mutation:
    """Fail the session "WORKER_LOST" if, in the store, it is still silent too long."""

    def mutate(session: ProgressSession) -> Change:
        if session.state.status not in _RUNNING or not _is_candidate(session):
            raise InvalidTransition(f"session {session.id!r} is not a running task")
        last = session.heartbeat_at or session.updated_at
        if now - last < timeout:
            raise InvalidTransition(f"session {session.id!r} is alive")
        worker = session.metadata.get(keys.WORKER)
        pid = session.metadata.get(keys.PID)
        seconds = round((now - last).total_seconds(), 1)
        message = (
            f"worker {worker} (pool process {pid}) sent no heartbeat for {seconds} s "
            "(the limit is heartbeat_timeout_seconds): presumed dead"
        )
        return engine.fail(session, message, "WORKER_LOST", now=now)

    return mutate


def sweep(integration: Integration) -> list[str]:
    """Fail the sessions whose worker died; returns their ids."""
    tracker = integration.tracker
    timeout = timedelta(seconds=integration.config.heartbeat_timeout_seconds)
    now = tracker.clock.now()
    cutoff = now - timeout
    failed: list[str] = []
    offset = 0
    while True:
        page = tracker.store.list_sessions(
            SessionQuery(statuses=_RUNNING, limit=SWEEP_PAGE, offset=offset)
        )
        for session in page:
            last = session.heartbeat_at or session.updated_at
            if last >= cutoff or not _is_candidate(session):
                continue
            mutation = lost_worker_mutation(tracker.engine, now, timeout)
            try:
                ended = tracker.apply_mutation(session.id, mutation)
            except InvalidTransition:
                continue  # alive again, or finished meanwhile
            except Exception:
                logger.exception("liveness sweep could not fail session %s", session.id)
                continue
            if ended is None:
                continue
            failed.append(session.id)
            logger.warning("progress session %s failed: its worker is gone", session.id)
            if ended.parent_id is not None:
                member = Member(session.id, session.operation_id)
                error = getattr(ended.state, "error_message", None)
                change = MemberChange(member, SubOperationState.FAILED, error=error)
                integration.member_changed(ended.parent_id, change)
        if len(page) < SWEEP_PAGE:
            return failed
        offset += SWEEP_PAGE


class LivenessMonitor:
    """A daemon thread that sweeps every ``heartbeat_timeout_seconds / 4``."""

    def __init__(self, integration: Integration) -> None:
        self._integration = integration
        self._interval_s = integration.config.heartbeat_timeout_seconds / SWEEPS_PER_TIMEOUT
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="celery-progress-liveness", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                sweep(self._integration)
            except Exception:
                logger.exception("liveness sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def start_liveness_monitor(app: Celery) -> None:
    """Sweep for dead workers' sessions from this process too (a monitor, a dashboard)."""
    from .install import install

    install(app)
    from .integration import integration_of

    integration = integration_of(app)
    assert integration is not None
    integration.start_liveness()
