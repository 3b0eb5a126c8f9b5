"""Groups, chords and chains as one session each, through a real prefork worker."""

from __future__ import annotations

from celery import chain, chord, group
from celery.result import AsyncResult

from celery_progress_mcp import Completed, Failed, ProgressEvent, ProgressSession
from celery_progress_mcp.core.models import SubOperationState
from celery_progress_mcp.testing import eventually
from tests.celery.helpers import finished
from tests.celery.project import Project

MEMBERS = 20
#: The parent's last event: nothing is logged for it afterwards.
ENDING_EVENTS = ("SessionCompleted", "SessionFailed", "SessionCancelled")


def _parent_events(project: Project, session_id: str, since: int) -> list[ProgressEvent]:
    """Every logged event of the ended parent session, read back in order from the store."""
    with project.tracker.subscribe_to_events(session_id=session_id, since=since) as events:
        found = []
        while (event := events.get(timeout=30)) is not None:
            found.append(event)
            if event.event_type in ENDING_EVENTS:
                return found
        raise AssertionError(f"the log holds no end of {session_id}: {found}")


def _completed(project: Project, result: object) -> ProgressSession:
    """The session of a Celery result, once completed."""

    def completed() -> ProgressSession | None:
        session = project.tracker.session_for(result)
        return session if session.state.status == "completed" else None

    return eventually(completed, timeout_s=30, what=f"the session of {result} to complete")


def _check_rollup(events: list[ProgressEvent], session: ProgressSession) -> None:
    percentages = [event.data["percentage"] for event in events if "percentage" in event.data]
    assert percentages == sorted(percentages), "the rollup went down"
    assert percentages[-1] == 100.0
    assert any(0.0 < percentage < 100.0 for percentage in percentages)
    history = [
        float(getattr(snap.state, "percentage", None) or 0.0)
        for snap in session.history
        if snap.state.status == "in_progress"
    ]
    assert history == sorted(history)


def test_a_group_is_one_session_with_its_members_as_sub_operations(project: Project) -> None:
    since = project.tracker.store.last_seq()
    result = group(project.piece.s(index) for index in range(MEMBERS)).apply_async()
    session = project.tracker.session_for(result)  # exists once apply_async returned
    assert session.id == result.id
    assert session.metadata["celery_kind"] == "group"
    assert [sub.id for sub in session.sub_operations] == [member.id for member in result.results]
    assert {sub.name for sub in session.sub_operations} == {project.piece.name}
    assert result.get(timeout=60) == list(range(MEMBERS))
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Completed)
    assert all(sub.state is SubOperationState.COMPLETED for sub in session.sub_operations)
    _check_rollup(_parent_events(project, result.id, since), session)
    member = project.tracker.get_session(result.results[0].id)
    assert member.parent_id == result.id
    assert isinstance(member.state, Completed)


def test_a_chord_is_one_session_with_its_callback_last(project: Project) -> None:
    since = project.tracker.store.last_seq()
    result = chord(project.piece.s(index) for index in range(MEMBERS))(project.merge.s())
    assert result.get(timeout=60) == sum(range(MEMBERS))
    session = _completed(project, result)
    assert isinstance(session, ProgressSession)
    assert session.metadata["celery_kind"] == "chord"
    assert len(session.sub_operations) == MEMBERS + 1
    callback = session.sub_operations[-1]
    assert (callback.id, callback.name) == (result.id, project.merge.name)
    assert all(sub.state is SubOperationState.COMPLETED for sub in session.sub_operations)
    _check_rollup(_parent_events(project, session.id, since), session)


def test_a_failing_member_fails_the_group_naming_it(project: Project) -> None:
    members = [project.piece.s(1), project.piece.s(-1), project.piece.s(2)]
    result = group(members).apply_async()
    failing = result.results[1].id
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Failed)
    assert session.state.error_code == "MEMBER_FAILED"
    assert failing in session.state.error_message
    assert project.piece.name in session.state.error_message
    assert "piece -1 is broken" in session.state.error_message


def test_a_chain_is_one_session_with_its_tasks_in_order(project: Project) -> None:
    result = chain(project.piece.si(1), project.piece.si(2), project.piece.si(3)).apply_async()
    assert result.get(timeout=60) == 3
    session = _completed(project, result)
    assert isinstance(session, ProgressSession)
    assert session.metadata["celery_kind"] == "chain"
    ids = [result.parent.parent.id, result.parent.id, result.id]
    assert [sub.id for sub in session.sub_operations] == ids
    assert all(sub.state is SubOperationState.COMPLETED for sub in session.sub_operations)


def test_cancelling_a_group_session_cancels_and_revokes_its_members(project: Project) -> None:
    result = group(project.piece.s(index, 0.2) for index in range(6)).apply_async()
    eventually(
        lambda: project.tracker.session_for(result).state.status == "in_progress",
        timeout_s=30,
        what="the group to start",
    )
    project.tracker.cancel_session(result.id, "no longer needed")
    session = finished(project.tracker, result.id)
    assert session.state.status == "cancelled"

    def members_ended() -> bool:
        states = [AsyncResult(member.id, app=project.app).state for member in result.results]
        return all(state in ("REVOKED", "SUCCESS") for state in states)

    eventually(members_ended, timeout_s=60)
    states = [AsyncResult(member.id, app=project.app).state for member in result.results]
    assert "REVOKED" in states  # the members that had not finished never ran to the end
