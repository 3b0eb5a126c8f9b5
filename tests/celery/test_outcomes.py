"""The result backend asked before a task's session times out (no worker needed).

A tracker made as ``install`` makes it (``TaskTimeOuts`` over
``BackendOutcomes``), on a memory store, a hand-driven clock and Celery's
in-memory cache backend, in which the tests write the tasks' ends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from celery_progress_mcp import (
    Cancelled,
    Completed,
    Failed,
    InProgress,
    ProgressConfig,
    ProgressTracker,
)
from celery_progress_mcp.celery.metadata_keys import ENDED_FROM, KIND, KIND_TASK
from celery_progress_mcp.celery.outcomes import BackendOutcomes
from celery_progress_mcp.celery.tracker import TaskTimeOuts
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.testing import FakeClock

TIMEOUT_S = 60.0


@pytest.fixture
def app() -> Celery:
    return Celery(f"outcomes{uuid.uuid4().hex[:6]}", broker="memory://", backend="cache+memory://")


def _tracker(app: Celery, clock: FakeClock, timeout_s: float = 2.0) -> ProgressTracker:
    config = ProgressConfig(session_timeout_seconds=TIMEOUT_S, cleanup_interval_seconds=1e6)
    time_outs = TaskTimeOuts(BackendOutcomes(app, timeout_s=timeout_s))
    tracker = ProgressTracker(config, store=MemoryStore(), clock=clock, may_time_out=time_outs)
    time_outs.bind(tracker.engine, tracker.clock)
    return tracker


@pytest.fixture
def tracker(app: Celery) -> Iterator[ProgressTracker]:
    with _tracker(app, FakeClock()) as tracker:
        yield tracker


def _task_session(tracker: ProgressTracker, *, started: bool = True) -> str:
    session_id = tracker.create_session("proj.work", {KIND: KIND_TASK})
    if started:
        tracker.update_progress(session_id, InProgress(percentage=40.0))
    return session_id


def _silence(tracker: ProgressTracker) -> None:
    clock = tracker.clock
    assert isinstance(clock, FakeClock)
    clock.advance(TIMEOUT_S + 1)


def test_a_silent_task_the_backend_knows_ended_ends_so_not_timeout(
    app: Celery, tracker: ProgressTracker
) -> None:
    succeeded, failed, revoked, unknown = (_task_session(tracker) for _ in range(4))
    app.backend.mark_as_done(succeeded, {"rows": 3})
    app.backend.mark_as_failure(failed, ValueError("bad row 7"))
    app.backend.mark_as_revoked(revoked, "stopped by an operator")
    _silence(tracker)

    assert tracker.cleanup_expired().timed_out == [unknown]

    done = tracker.get_session(succeeded)
    assert isinstance(done.state, Completed)
    assert done.state.result_summary == "{'rows': 3}"
    assert done.metadata[ENDED_FROM] == "result_backend"
    error = tracker.get_session(failed).state
    assert isinstance(error, Failed)
    assert (error.error_code, error.error_message) == ("ValueError", "bad row 7")
    assert error.failed_at_percentage == 40.0
    cancelled = tracker.get_session(revoked).state
    assert isinstance(cancelled, Cancelled)
    assert cancelled.reason == "stopped by an operator"
    lost = tracker.get_session(unknown).state
    assert isinstance(lost, Failed)
    assert lost.error_code == "TIMEOUT"


def test_a_queued_task_is_spared_unless_the_backend_knows_it_ended(
    app: Celery, tracker: ProgressTracker
) -> None:
    queued = _task_session(tracker, started=False)
    ran = _task_session(tracker, started=False)  # its start and end never reached the store
    app.backend.mark_as_done(ran, "fine")
    _silence(tracker)

    assert tracker.cleanup_expired().timed_out == []

    assert tracker.get_session(queued).status == "initializing"
    state = tracker.get_session(ran).state
    assert isinstance(state, Completed)
    assert state.result_summary == "'fine'"


def test_a_backend_that_does_not_answer_in_time_is_not_waited_for(app: Celery) -> None:
    def hanging(task_id: str, **options: Any) -> Any:
        time.sleep(30)
        raise AssertionError("never answers")

    app.AsyncResult = hanging  # type: ignore[method-assign]
    with _tracker(app, FakeClock(), timeout_s=0.2) as tracker:
        session_id = _task_session(tracker)
        _silence(tracker)
        started_s = time.monotonic()
        assert tracker.cleanup_expired().timed_out == [session_id]
        assert time.monotonic() - started_s < 5.0  # waited 0.2 s, not 30


def test_without_a_result_backend_the_task_times_out_as_before() -> None:
    app = Celery(f"outcomes{uuid.uuid4().hex[:6]}", broker="memory://")
    with _tracker(app, FakeClock()) as tracker:
        queued = _task_session(tracker, started=False)
        silent = _task_session(tracker)
        _silence(tracker)
        assert tracker.cleanup_expired().timed_out == [silent]
        assert tracker.get_session(queued).status == "initializing"
