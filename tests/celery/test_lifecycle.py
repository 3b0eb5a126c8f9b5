"""A task's session through a real prefork worker: dispatch, progress, end.

Every test runs on the three configurations of conftest.py (filesystem://
and SQLite; Redis and PostgreSQL; RabbitMQ and SQLite).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from datetime import UTC, datetime, timedelta

from celery import group
from celery.events.state import State
from celery.result import AsyncResult

from celery_progress_mcp import Cancelled, Completed, Failed, ProgressEvent, Subscription
from celery_progress_mcp.core.models import SubOperationState
from celery_progress_mcp.testing import eventually
from tests.celery.helpers import finished, history_percentages, wait_status
from tests.celery.project import Project

#: How long the members of the dispatch-time test wait before they run.
COUNTDOWN_S = 1.0


def _events_until_end(subscription: Subscription, timeout_s: float = 30.0) -> list[ProgressEvent]:
    """The subscription's events up to and including the session's final one."""
    events: list[ProgressEvent] = []

    def ended() -> bool:
        while (event := subscription.get_nowait()) is not None:
            events.append(event)
        return any(
            event.data.get("status") in ("completed", "failed", "cancelled") for event in events
        )

    eventually(ended, timeout_s=timeout_s, what="the session's final event")
    return events


def _revoked(project: Project, task_id: str) -> None:
    """Wait until the result backend says the task was revoked."""
    eventually(
        lambda: AsyncResult(task_id, app=project.app).state == "REVOKED",
        timeout_s=30,
        what=f"task {task_id} REVOKED",
    )


def test_dispatch_creates_the_session_before_any_worker_runs(project: Project) -> None:
    # A queue that no worker consumes: the task cannot have started.
    result = project.count.apply_async((3,), queue=f"{project.config.prefix}.nobody")
    session = project.tracker.get_session(result.id)
    assert session.state.status == "initializing"
    assert session.operation_id == project.count.name
    assert session.metadata["celery_kind"] == "task"
    project.tracker.cancel_session(result.id, "never run")


def test_the_message_carries_the_dispatch_time_to_the_worker(project: Project) -> None:
    before = datetime.now(UTC)
    result = project.dispatch_time.delay()
    carried = datetime.fromisoformat(result.get(timeout=30))
    assert before <= carried <= datetime.now(UTC)
    created = project.tracker.get_session(result.id).created_at
    assert abs(created - carried) < timedelta(milliseconds=1)  # the session's own time


def test_a_session_the_worker_creates_is_dated_from_its_dispatch(project: Project) -> None:
    # A group's members' sessions are made by the worker when they start.
    dispatched = datetime.now(UTC)
    result = group(project.piece.s(index) for index in range(2)).apply_async(countdown=COUNTDOWN_S)
    sent = datetime.now(UTC)
    assert result.get(timeout=60) == [0, 1]
    for member in result.results:
        session = finished(project.tracker, member.id)
        started = next(s.timestamp for s in session.history if s.state.status == "in_progress")
        assert dispatched <= session.created_at <= sent
        assert started - dispatched >= timedelta(seconds=COUNTDOWN_S)


def test_update_reports_progress_step_and_metadata(project: Project) -> None:
    task_id = str(uuid.uuid4())
    subscription = project.tracker.subscribe_to_events(session_id=task_id)
    project.report.apply_async(([10.0, 40.0, 70.0],), task_id=task_id)
    events = _events_until_end(subscription)
    subscription.close()
    session = finished(project.tracker, task_id)
    assert isinstance(session.state, Completed)
    assert session.state.result_summary == "'reported'"
    assert session.metadata["reported"] == 3
    percentages = history_percentages(session)
    assert percentages == sorted(percentages)
    assert 70.0 in percentages  # the last update is always written
    seqs = [event.seq for event in events]
    assert seqs == sorted(seqs)  # another process's events, in order
    assert events[-1].event_type == "SessionCompleted"


def test_iter_reports_as_it_goes(project: Project) -> None:
    result = project.count.delay(40, 0.01)
    assert result.get(timeout=30) == 40
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Completed)
    percentages = history_percentages(session)
    assert any(0.0 < percentage < 100.0 for percentage in percentages)
    assert percentages[-1] == 100.0
    last = [snap for snap in session.history if snap.state.status == "in_progress"][-1]
    assert last.state.current_step == "counting"  # type: ignore[union-attr]
    assert last.state.current_step_number == 40  # type: ignore[union-attr]


def test_update_state_in_celery_progress_format(project: Project) -> None:
    result = project.legacy.delay(8)
    assert result.get(timeout=30) == 8
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Completed)
    steps = [getattr(snap.state, "current_step", None) for snap in session.history]
    assert "item 8" in steps
    percentages = history_percentages(session)
    assert percentages[-1] == 100.0
    assert percentages == sorted(percentages)


def test_update_state_plain_meta_and_custom_state(project: Project) -> None:
    result = project.plain_state.delay()
    assert result.get(timeout=30) == "states"
    session = finished(project.tracker, result.id)
    thirty = [snap for snap in session.history if getattr(snap.state, "percentage", None) == 30.0]
    assert thirty
    assert thirty[0].state.current_step == "thirty"  # type: ignore[union-attr]
    assert session.metadata["celery_state"] == {"state": "DOWNLOADING", "meta": {"file": "a.csv"}}


def test_sub_operations_complete_and_roll_up(project: Project) -> None:
    result = project.staged.delay()
    assert result.get(timeout=30) == "staged"
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Completed)
    assert [(sub.id, sub.name, sub.weight) for sub in session.sub_operations] == [
        ("load", "Load", 1.0),
        ("work", "Work", 3.0),
    ]
    assert all(sub.state is SubOperationState.COMPLETED for sub in session.sub_operations)


def test_a_failing_stage_records_its_error(project: Project) -> None:
    result = project.stage_fails.delay()
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Failed)
    assert session.state.error_code == "KeyError"
    (stage,) = session.sub_operations
    assert stage.state is SubOperationState.FAILED
    assert stage.error == "KeyError: 'missing column'"


def test_failure_records_message_code_and_percentage(project: Project) -> None:
    result = project.fail.delay()
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Failed)
    assert session.state.error_code == "ValueError"
    assert session.state.error_message == "this task fails on purpose"
    assert session.state.failed_at_percentage == 25.0
    assert result.state == "FAILURE"


def test_retry_then_success_continues_the_session(project: Project) -> None:
    result = project.flaky.delay(1)
    assert result.get(timeout=30) == "attempt 2"
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Completed)
    assert session.metadata["celery_attempt"] == 2
    assert "flaky service" in session.metadata["celery_retry_reason"]
    steps = [getattr(snap.state, "current_step", None) for snap in session.history]
    assert "retry 1 scheduled" in steps
    statuses = [str(snap.state.status) for snap in session.history]
    assert statuses.count("initializing") == 1  # one session from dispatch to the end


def test_revoke_with_terminate_ends_cancelled(project: Project) -> None:
    result = project.endless.delay()
    wait_status(project.tracker, result.id, "in_progress")
    result.revoke(terminate=True)
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Cancelled)
    assert session.state.reason.startswith("terminated")
    assert session.metadata["celery_terminated"] is True


def test_cooperative_cancel_raises_task_cancelled(project: Project) -> None:
    result = project.endless.delay()
    wait_status(project.tracker, result.id, "in_progress")
    project.tracker.cancel_session(result.id, "the user changed their mind")
    _revoked(project, result.id)
    session = project.tracker.get_session(result.id)
    assert isinstance(session.state, Cancelled)
    assert session.state.reason == "the user changed their mind"


def test_task_cancelled_is_not_swallowed_by_except_exception(project: Project) -> None:
    result = project.swallow.delay()
    wait_status(project.tracker, result.id, "in_progress")
    project.tracker.cancel_session(result.id, "stop")
    _revoked(project, result.id)
    assert result.result != "swallowed"


def test_cancelling_a_queued_task_revokes_it(project: Project) -> None:
    result = project.count.apply_async((5,), countdown=2)
    project.tracker.cancel_session(result.id, "not needed")
    _revoked(project, result.id)
    session = project.tracker.get_session(result.id)
    assert isinstance(session.state, Cancelled)
    assert not any(snap.state.status == "in_progress" for snap in session.history)


def test_celery_events_show_the_progress_as_flower_does(project: Project) -> None:
    """Flower builds its task list with celery.events.state.State from the event stream.

    The task is STARTED (a later task-revoked may replace it), with its progress.
    """
    state = State()
    stop = threading.Event()
    listening = threading.Event()

    def listen() -> None:
        with project.app.connection_for_read() as connection:
            receiver = project.app.events.Receiver(connection, handlers={"*": state.event})
            receiver.should_stop = False

            def check(*_: object) -> None:
                listening.set()
                receiver.should_stop = stop.is_set()

            receiver.on_iteration = check
            with contextlib.suppress(TimeoutError):
                receiver.capture(limit=None, timeout=60, wakeup=False)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    listening.wait(10)
    result = project.report.delay([20.0, 40.0, 60.0, 80.0], 0.3)

    def progress_seen() -> bool:
        task = state.tasks.get(result.id)
        return (
            task is not None and task.state == "STARTED" and getattr(task, "step", None) is not None
        )

    try:
        eventually(progress_seen, timeout_s=30)
    finally:
        stop.set()
        thread.join(10)
    result.get(timeout=30)
