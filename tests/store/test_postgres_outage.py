"""A PostgreSQL outage in the middle of tracked work: the work carries on, and
once the server is back the store holds the final state."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from celery_progress_mcp import (
    InProgress,
    ProgressConfig,
    ProgressEventType,
    ProgressTracker,
    SubOperation,
)
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.testing import eventually

from .private_postgres import PrivatePostgres

pytestmark = pytest.mark.slow

STEPS = 300
#: Steps the work makes before the server is stopped, and while it is down.
STEPS_BEFORE_OUTAGE = 60
STEPS_DURING_OUTAGE = 60
#: Bound on each wait for the work to get somewhere (a wait, not a timing assertion).
WAIT_S = 120.0


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    yield server
    server.close()


def test_work_survives_a_database_outage(server: PrivatePostgres) -> None:
    store = SqlStore(server.url)
    tracker = ProgressTracker(
        ProgressConfig(update_interval_ms=0, granularity_level="Verbose"), store=store
    )
    steps_done = 0
    failures: list[BaseException] = []
    session_ids: list[str] = []

    def work() -> None:
        nonlocal steps_done
        try:
            session_id = tracker.create_session("import", {"rows": STEPS})
            session_ids.append(session_id)
            tracker.add_sub_operations(
                session_id,
                [SubOperation(id="read", name="Read"), SubOperation(id="write", name="Write")],
            )
            tracker.start_sub_operation(session_id, "read")
            for step in range(1, STEPS + 1):
                if step == STEPS // 2:
                    tracker.complete_sub_operation(session_id, "read")
                    tracker.start_sub_operation(session_id, "write")
                tracker.update_progress(
                    session_id, InProgress(percentage=step * 100 / STEPS), metadata={"step": step}
                )
                steps_done = step
                time.sleep(0.005)
            tracker.complete_sub_operation(session_id, "write")
            tracker.complete_session(session_id, "imported")
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    eventually(
        lambda: steps_done >= STEPS_BEFORE_OUTAGE, timeout_s=WAIT_S, what="the work to start"
    )
    server.stop()
    stopped_at = steps_done
    eventually(
        lambda: steps_done >= stopped_at + STEPS_DURING_OUTAGE or not worker.is_alive(),
        timeout_s=WAIT_S,
        what="the work to go on while the database is down",
    )
    during = tracker.health()
    server.start()
    worker.join(WAIT_S)
    assert not worker.is_alive()
    assert failures == []  # the outage never reached the work
    assert during["status"] == "degraded"
    assert during["outage"]["engaged"]
    assert during["outage"]["buffered"] > 0

    eventually(
        lambda: tracker.health()["status"] == "ok",
        timeout_s=WAIT_S,
        what="the backlog to be written",
    )
    report = tracker.health()["outage"]
    assert (report["dropped"], report["refused_on_replay"]) == (0, 0)
    tracker.close()
    store.close()

    fresh = SqlStore(server.url)
    try:
        (session_id,) = session_ids
        session = fresh.get(session_id)
        assert session is not None
        assert session.status == "completed"
        assert session.metadata == {"rows": STEPS, "step": STEPS}
        assert [(sub.id, sub.state) for sub in session.sub_operations] == [
            ("read", "completed"),
            ("write", "completed"),
        ]
        assert session.history[-1].state.status == "completed"
        logged = fresh.events_since(0, session_id=session_id, limit=10_000)
        updates = [e for e in logged if e.event_type == ProgressEventType.PROGRESS_UPDATED]
        assert len(updates) == STEPS  # nothing lost while the server was down
        assert logged[-1].event_type == ProgressEventType.SESSION_COMPLETED
    finally:
        fresh.close()
