"""``self.progress``: the handle's reporting, checks and cooperative cancellation.

Driven on a real tracker (memory store) with a fake clock, so windows end
when the test says, without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celery_progress_mcp import (
    InProgress,
    InvalidProgress,
    ProgressConfig,
    ProgressTracker,
    TaskCancelled,
)
from celery_progress_mcp.celery.task_progress import TaskProgress
from celery_progress_mcp.celery.worker_runtime import Running
from celery_progress_mcp.core.models import SubOperationState
from celery_progress_mcp.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tracker(clock: FakeClock) -> Iterator[ProgressTracker]:
    with ProgressTracker(ProgressConfig(update_interval_ms=500), clock=clock) as tracker:
        yield tracker


@pytest.fixture
def handle(tracker: ProgressTracker) -> TaskProgress:
    session_id = tracker.create_session("task", session_id="task-1")
    tracker.update_progress(session_id, InProgress(percentage=0.0))
    return TaskProgress(tracker, session_id, Running(session_id=session_id, task_name="task"))


def _state(tracker: ProgressTracker) -> InProgress:
    state = tracker.get_session("task-1").state
    assert isinstance(state, InProgress)
    return state


def test_percentage_from_counts_with_step_numbers(
    tracker: ProgressTracker, handle: TaskProgress
) -> None:
    handle.update(current=30, total=120, step="rows", rows=30)
    state = _state(tracker)
    assert state.percentage == 25.0
    assert (state.current_step, state.current_step_number, state.total_steps) == ("rows", 30, 120)
    assert tracker.get_session("task-1").metadata["rows"] == 30


def test_a_step_alone_keeps_the_percentage(tracker: ProgressTracker, handle: TaskProgress) -> None:
    handle.update(40)
    handle.update(step="still going")
    assert _state(tracker).percentage == 40.0
    assert _state(tracker).current_step == "still going"


@pytest.mark.parametrize(
    "arguments",
    [
        {"percentage": 150},
        {"percentage": -1},
        {"percentage": float("nan")},
        {"percentage": "half"},
        {"current": 1, "total": float("inf")},
        {"percentage": 10, "eta_seconds": -5},
        {"percentage": 10, "payload": object()},
    ],
)
def test_bad_arguments_raise_invalid_progress_and_change_nothing(
    tracker: ProgressTracker, handle: TaskProgress, arguments: dict[str, object]
) -> None:
    before = tracker.get_session("task-1")
    with pytest.raises(InvalidProgress):
        handle.update(**arguments)  # type: ignore[arg-type]
    assert tracker.get_session("task-1").state == before.state


def test_iter_reports_count_and_total(tracker: ProgressTracker, handle: TaskProgress) -> None:
    assert list(handle.iter(range(8), step="items")) == list(range(8))
    state = _state(tracker)
    assert (state.percentage, state.current_step_number, state.total_steps) == (100.0, 8, 8)


def test_iter_without_a_length_reports_the_count(
    tracker: ProgressTracker, handle: TaskProgress
) -> None:
    assert sum(handle.iter(x for x in range(5))) == 10
    assert _state(tracker).current_step_number == 5


def test_sub_operations_complete_fail_and_roll_up(
    tracker: ProgressTracker, handle: TaskProgress
) -> None:
    handle.plan([("a", "A"), ("b", "B", 3.0)])
    with handle.sub_operation("a", "A") as stage:
        stage.update(current=1, total=2)
        assert tracker.get_session("task-1").sub_operation("a").state is SubOperationState.ACTIVE  # type: ignore[union-attr]
    with pytest.raises(ZeroDivisionError), handle.sub_operation("b", "B", weight=3.0):
        _ = 1 / 0
    session = tracker.get_session("task-1")
    a, b = session.sub_operations
    assert a.state is SubOperationState.COMPLETED
    assert b.state is SubOperationState.FAILED
    assert b.error == "ZeroDivisionError: division by zero"


def test_a_cancellation_from_outside_stops_the_next_updates(
    clock: FakeClock, tracker: ProgressTracker, handle: TaskProgress
) -> None:
    handle.update(10)
    # Cancelled by another process (another tracker over the same store).
    with ProgressTracker(tracker.config, store=tracker.store, clock=clock) as elsewhere:
        elsewhere.cancel_session("task-1", "user asked")
    handle.update(20)  # within the window: coalesced, no store read
    clock.advance(0.5)  # the window ends: the store refuses the coalesced update
    with pytest.raises(TaskCancelled, match="user asked"):
        handle.update(30)
    with pytest.raises(TaskCancelled):
        handle.update(40)  # and every one after
    assert handle.cancelled


def test_cancelled_and_raise_if_cancelled(tracker: ProgressTracker, handle: TaskProgress) -> None:
    assert not handle.cancelled
    handle.raise_if_cancelled()
    tracker.cancel_session("task-1", "stop")
    handle._cancel_checked_s = float("-inf")  # the once-a-second read is due
    assert handle.cancelled
    with pytest.raises(TaskCancelled):
        handle.raise_if_cancelled()


def test_task_cancelled_escapes_except_exception() -> None:
    assert not issubclass(TaskCancelled, Exception)

    def task_code() -> None:
        try:
            raise TaskCancelled("task-1", "stop")
        except Exception:  # what task code often does
            pytest.fail("TaskCancelled was swallowed")

    with pytest.raises(TaskCancelled):
        task_code()


def test_pause_drops_updates_until_resume(tracker: ProgressTracker, handle: TaskProgress) -> None:
    handle.update(10)
    handle.pause("waiting for a lock")
    handle.update(50)
    assert tracker.get_session("task-1").state.status == "paused"
    handle.resume()
    handle.update(60)
    assert _state(tracker).percentage == 60.0


def test_a_detached_handle_reports_nowhere() -> None:
    handle = TaskProgress(None, "detached")
    handle.update(50)
    with handle.sub_operation("x") as stage:
        stage.update(10)
    assert list(handle.iter([1, 2])) == [1, 2]
    assert not handle.cancelled
