"""A cancelled group or chord, and a retried task, as a user reads them: real prefork workers.

* A cancelled parent ends every member that was pending or running Cancelled
  in its sub-operations, in the same change; the members' own later ends
  (revoked, or stopped at their next update) never move it again; the JSON
  of ``sessions show`` says so.
* A retry puts the task's percentage back to ``RETRY_PERCENTAGE`` with the
  step "retry N scheduled"; the next attempt climbs from there; MCP progress
  notices made from the same events never go down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from celery import chain, chord, group
from celery.result import AsyncResult

from celery_progress_mcp import ProgressEvent, ProgressSession
from celery_progress_mcp.celery.lifecycle import RETRY_PERCENTAGE
from celery_progress_mcp.core.models import SubOperationState
from celery_progress_mcp.core.states import TERMINAL_STATUSES
from celery_progress_mcp.mcp.progress_notices import ProgressMapper
from celery_progress_mcp.testing import eventually
from tests.celery.helpers import finished
from tests.celery.project import Project
from tests.celery.workers import ROOT

#: Members in a cancelled group: more than the worker's two pool processes run at once.
MEMBERS = 6
#: Each member's pause between its ten steps: a member runs for ten of these.
STEP_S = 0.3
_CANCELLED = SubOperationState.CANCELLED
_COMPLETED = SubOperationState.COMPLETED
_OPEN = (SubOperationState.PENDING, SubOperationState.ACTIVE)


def _shown_json(project: Project, session_id: str) -> dict[str, Any]:
    """``celery-progress-mcp -A <the test app> sessions show ID --json``, as a user runs it."""
    command = [str(Path(sys.executable).with_name("celery-progress-mcp"))]
    arguments = ["-A", "tests.celery.worker_app:app", "sessions", "show", session_id, "--json"]
    env = {**os.environ, **project.config.env(), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*command, *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def _cancel_once_running(project: Project, parent_id: str) -> ProgressSession:
    """Cancel the parent once one of its members runs; the parent as the store has it then."""

    def a_member_runs() -> bool:
        session = project.tracker.get_session(parent_id)
        return any(sub.state is SubOperationState.ACTIVE for sub in session.sub_operations)

    eventually(a_member_runs, timeout_s=30, what=f"a member of {parent_id} to run")
    project.tracker.cancel_session(parent_id, "no longer needed")
    project.tracker.flush()
    return finished(project.tracker, parent_id)


def _check_members_cancelled(session: ProgressSession, expected: int) -> None:
    states = [sub.state for sub in session.sub_operations]
    assert session.state.status == "cancelled"
    assert len(states) == expected
    assert not any(state in _OPEN for state in states), states
    assert _CANCELLED in states
    assert set(states) <= {_CANCELLED, _COMPLETED}


def _stored(project: Project, session_id: str) -> ProgressSession:
    """The session as the store has it (what every other process reads)."""
    session = project.tracker.store.get(session_id, with_history=False)
    assert session is not None, session_id
    return session


def _session_ended(project: Project, session_id: str) -> bool:
    """Whether the member's session ended, or was never made (revoked while queued)."""
    session = project.tracker.store.get(session_id, with_history=False)
    return session is None or session.state.status in TERMINAL_STATUSES


def _check_never_moved_again(
    project: Project, members: list[str], cancelled: ProgressSession
) -> None:
    """Once every member has ended in Celery, the parent is as its cancel left it."""

    def members_ended() -> bool:
        states = [AsyncResult(member, app=project.app).state for member in members]
        return all(state in ("REVOKED", "SUCCESS") for state in states)

    eventually(members_ended, timeout_s=60, what="every member to end in Celery")
    # A member stopped at its next update ends after its result is written: its
    # session's end (then its word to the parent) reaches the store a little later.
    eventually(
        lambda: all(_session_ended(project, member) for member in members),
        timeout_s=30,
        what="every member's session to end",
    )
    project.tracker.flush()
    again = _stored(project, cancelled.id)
    assert again.state == cancelled.state
    assert again.sub_operations == cancelled.sub_operations
    assert again.updated_at == cancelled.updated_at


def test_a_cancelled_group_ends_its_running_and_pending_members_cancelled(
    project: Project,
) -> None:
    result = group(project.piece.s(index, STEP_S) for index in range(MEMBERS)).apply_async()
    session = _cancel_once_running(project, result.id)
    _check_members_cancelled(session, MEMBERS)
    # Two pool processes: at least the members still queued never ran.
    pending_at_cancel = sum(
        sub.state is _CANCELLED and sub.started_at is None for sub in session.sub_operations
    )
    assert pending_at_cancel >= 1
    shown = _shown_json(project, result.id)
    assert shown["state"]["status"] == "cancelled"
    assert {sub["state"] for sub in shown["sub_operations"]} <= {"cancelled", "completed"}
    assert [sub["state"] for sub in shown["sub_operations"]] == [
        sub.state.value for sub in session.sub_operations
    ]
    members = [member.id for member in result.results]
    _check_never_moved_again(project, members, _stored(project, result.id))


def test_a_cancelled_chord_ends_its_members_and_its_callback_cancelled(project: Project) -> None:
    header = [project.piece.s(index, STEP_S) for index in range(MEMBERS - 2)]
    result = chord(header)(project.merge.s())
    parent_id = project.tracker.session_for(result).id
    session = _cancel_once_running(project, parent_id)
    _check_members_cancelled(session, MEMBERS - 1)
    callback = session.sub_operations[-1]
    assert callback.id == result.id
    assert callback.state is _CANCELLED
    shown = _shown_json(project, parent_id)
    assert shown["state"]["status"] == "cancelled"
    assert shown["sub_operations"][-1]["state"] == "cancelled"
    members = [member.id for member in result.parent.results]
    _check_never_moved_again(project, members, _stored(project, parent_id))


def test_a_cancelled_chain_ends_its_running_and_later_tasks_cancelled(project: Project) -> None:
    tasks = [project.piece.si(index, STEP_S) for index in range(3)]
    result = chain(*tasks).apply_async()
    parent_id = project.tracker.session_for(result).id
    session = _cancel_once_running(project, parent_id)
    _check_members_cancelled(session, 3)
    assert session.sub_operations[-1].state is _CANCELLED  # never reached
    shown = _shown_json(project, parent_id)
    assert [sub["state"] for sub in shown["sub_operations"]] == [
        sub.state.value for sub in session.sub_operations
    ]
    first = result.parent.parent.id
    _check_never_moved_again(project, [first], _stored(project, parent_id))


def _logged_events(project: Project, session_id: str) -> list[ProgressEvent]:
    """Every logged event of the ended session, read back in order from the store."""
    with project.tracker.subscribe_to_events(session_id=session_id, since=0) as events:
        found = []
        while (event := events.get(timeout=30)) is not None:
            found.append(event)
            if event.event_type == "SessionCompleted":
                return found
        raise AssertionError(f"the log holds no end of {session_id}: {found}")


def test_a_retry_goes_back_to_its_rule_and_mcp_progress_never_goes_down(
    project: Project,
) -> None:
    result = project.flaky.delay(1)
    assert result.get(timeout=30) == "attempt 2"
    session = finished(project.tracker, result.id)
    in_progress = [
        (snap.state.percentage, snap.state.current_step)  # type: ignore[union-attr]
        for snap in session.history
        if snap.state.status == "in_progress"
    ]
    steps = [step for _, step in in_progress]
    retry = steps.index("retry 1 scheduled")
    assert in_progress[retry][0] == RETRY_PERCENTAGE
    # Each attempt climbs from the rule's percentage; the first reached 50 % first.
    assert (50.0, "attempt 1") in in_progress[:retry]
    second = [percentage or 0.0 for percentage, _ in in_progress[retry:]]
    assert second == sorted(second)
    assert (50.0, "attempt 2") in in_progress[retry:]

    events = _logged_events(project, result.id)
    percentages = [event.data["percentage"] for event in events if "percentage" in event.data]
    assert percentages != sorted(percentages)  # the session's own percentage went back
    mapper = ProgressMapper()
    notices = [notice for event in events if (notice := mapper.observe(event)) is not None]
    progress = [notice.progress for notice in notices]
    assert progress == sorted(set(progress)), progress  # strictly increasing
    assert progress[-1] == 100.0
