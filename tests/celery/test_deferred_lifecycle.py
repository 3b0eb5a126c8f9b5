"""Dispatch and start on the deferred write path, in one process (no worker needed).

The signal handlers are called as Celery calls them, on an app with an
in-memory broker and an SQLite store (a store that waits on I/O: the
tracker has its writer). Neither ``delay()`` nor a task's start reads the
store; what they write lands with the writer's next batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from celery_progress_mcp import InProgress
from celery_progress_mcp.celery import install, progress_task, uninstall
from celery_progress_mcp.celery.dispatch import DISPATCHED_AT_HEADER
from celery_progress_mcp.celery.integration import Integration, integration_of
from celery_progress_mcp.celery.tracker import CeleryProgressTracker
from celery_progress_mcp.testing import eventually

#: The store's methods that read.
READS = ("get", "list_sessions", "count_sessions", "stale_sessions", "events_since")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Celery]:
    app = Celery(f"deferred{uuid.uuid4().hex[:6]}", broker="memory://")
    app.conf.progress_store_url = f"sqlite:///{tmp_path / 'progress.sqlite3'}"
    app.conf.progress_bus = "local"
    install(app)
    yield app
    uninstall(app)


@pytest.fixture
def work(app: Celery) -> Any:
    @progress_task(app, name=f"{app.main}.work")
    def work(self: Any) -> str:
        return "done"

    return work


@pytest.fixture
def reads(app: Celery, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the store's reads from now on."""
    store = _tracker(app).store
    made: list[str] = []
    for name in READS:
        original = getattr(store, name)

        def counted(*args: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            made.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(store, name, counted)
    return made


def _tracker(app: Celery) -> CeleryProgressTracker:
    return _integration(app).tracker


def _integration(app: Celery) -> Integration:
    integration = integration_of(app)
    assert integration is not None
    return integration


def _start(app: Celery, task: Any, task_id: str, **headers: Any) -> None:
    """``task_prerun`` as a worker's pool process sends it."""
    task.push_request(id=task_id, hostname="worker@here", retries=0, **headers)
    try:
        _integration(app).lifecycle.on_prerun(task, task_id)
    finally:
        task.pop_request()


def test_dispatch_and_start_read_nothing_from_the_store(
    app: Celery, work: Any, reads: list[str]
) -> None:
    result = work.delay()
    assert reads == []
    assert _tracker(app).get_session(result.id).status == "initializing"  # shown at once
    reads.clear()
    _start(app, work, result.id)
    assert reads == []

    _tracker(app).flush()
    session = _tracker(app).store.get(result.id)
    assert session is not None
    assert isinstance(session.state, InProgress)
    assert session.metadata["celery_worker"] == "worker@here"
    assert session.metadata["celery_attempt"] == 1


def test_a_start_whose_creation_was_lost_creates_the_session_dated_from_its_dispatch(
    app: Celery, work: Any
) -> None:
    task_id = str(uuid.uuid4())  # never dispatched through this app: no session
    dispatched = datetime.now(UTC) - timedelta(minutes=5)
    _start(app, work, task_id, **{DISPATCHED_AT_HEADER: dispatched.isoformat()})

    _tracker(app).flush()
    session = _tracker(app).store.get(task_id)
    assert session is not None
    assert session.created_at == dispatched
    assert isinstance(session.state, InProgress)
    assert session.operation_id == work.name


def test_a_task_cancelled_while_queued_is_told_when_its_start_is_refused(
    app: Celery, work: Any
) -> None:
    tracker = _tracker(app)
    result = work.delay()
    tracker.cancel_session(result.id, "not wanted", revoke=False)
    tracker.flush()

    _start(app, work, result.id)

    running = _integration(app).runtime.get(result.id)
    assert running is not None
    eventually(lambda: running.cancelled, what="the refused start to cancel the task")
    assert running.cancel_reason == "not wanted"
    assert tracker.get_session(result.id).status == "cancelled"


def test_a_member_that_runs_before_its_group_is_written_still_completes_it(
    app: Celery, work: Any
) -> None:
    """The dispatcher's creation of a group is queued for its writer; a worker may run
    a member first. The member makes the group if absent, so its end is not refused
    for want of a parent; the dispatcher's creation, arriving later, leaves it and
    its seal completes it."""
    tracker, integration = _tracker(app), _integration(app)
    group_id, member_id = str(uuid.uuid4()), str(uuid.uuid4())
    dispatched = datetime.now(UTC) - timedelta(seconds=3)
    headers = {"group": group_id, "group_index": 0, DISPATCHED_AT_HEADER: dispatched.isoformat()}
    _start(app, work, member_id, **headers)
    work.push_request(id=member_id, hostname="worker@here", retries=0, **headers)
    try:
        integration.lifecycle.on_success(work, "done")
    finally:
        work.pop_request()
    tracker.flush()
    early = tracker.store.get(group_id)
    assert early is not None, "the member's end was refused: no group"
    assert early.created_at == dispatched
    assert [sub.id for sub in early.sub_operations] == [member_id]
    assert early.status != "completed"  # not sealed: more members may come

    # The dispatcher, late: its creation finds the group there, its seal completes it.
    message = {"id": member_id, "group": group_id, "group_index": 0, "task": work.name}
    integration.dispatcher.on_publish(work, message, ((), {}, {}))
    integration.dispatcher.seal(group_id)
    tracker.flush()
    session = tracker.store.get(group_id)
    assert session is not None
    assert session.status == "completed"
    assert session.metadata["celery_kind"] == "group"
