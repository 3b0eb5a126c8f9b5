"""The tracker's surface: the same methods on both trackers; reading sessions back."""

from __future__ import annotations

import inspect
from typing import get_type_hints

import pytest

from celery_progress_mcp import (
    AsyncProgressTracker,
    InProgress,
    InvalidProgress,
    ProgressSession,
    ProgressTracker,
    SubOperation,
    SubOperationUpdate,
)
from celery_progress_mcp.testing import FakeClock
from celery_progress_mcp.tracking.tracker import TrackerOptions

from .conftest import TrackerFactory

#: The tracker methods of DESIGN.md, sync on ProgressTracker, awaitable on AsyncProgressTracker.
DESIGN_METHODS = [
    "create_session",
    "update_progress",
    "add_sub_operations",
    "start_sub_operation",
    "complete_sub_operation",
    "fail_sub_operation",
    "pause_session",
    "resume_session",
    "complete_session",
    "fail_session",
    "cancel_session",
    "get_session",
    "list_sessions",
    "get_stats",
    "cleanup_expired",
    "flush",
    "close",
]


@pytest.mark.parametrize("name", DESIGN_METHODS)
def test_both_trackers_have_the_designed_method(name: str) -> None:
    sync_method = getattr(ProgressTracker, name)
    async_method = getattr(AsyncProgressTracker, name)
    assert not inspect.iscoroutinefunction(sync_method)
    assert inspect.iscoroutinefunction(async_method)
    sync_parameters = list(inspect.signature(sync_method).parameters)
    assert list(inspect.signature(async_method).parameters) == sync_parameters


def test_subscribe_to_events_takes_the_designed_keywords() -> None:
    for tracker_class in (ProgressTracker, AsyncProgressTracker):
        parameters = inspect.signature(tracker_class.subscribe_to_events).parameters
        assert [p for p in parameters if p != "self"] == ["session_id", "event_types", "since"]
        assert all(p.kind is p.KEYWORD_ONLY for n, p in parameters.items() if n != "self")


def test_the_async_tracker_takes_every_keyword_of_the_sync_one() -> None:
    parameters = inspect.signature(ProgressTracker.__init__).parameters
    keywords = [n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY]
    assert keywords == list(get_type_hints(TrackerOptions))
    async_parameters = inspect.signature(AsyncProgressTracker.__init__).parameters
    assert async_parameters["options"].kind is inspect.Parameter.VAR_KEYWORD


def test_create_session_keeps_given_ids(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()
    parent = tracker.create_session("group", session_id="group-1")
    child = tracker.create_session("member", {"n": 1}, session_id="task-1", parent_id=parent)
    assert (parent, child) == ("group-1", "task-1")
    session = tracker.get_session(child)
    assert (session.parent_id, session.metadata) == ("group-1", {"n": 1})


def test_list_sessions_filters_pages_and_leaves_history_out(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, update_interval_ms=0)
    ids = []
    for index in range(5):
        ids.append(tracker.create_session(f"op{index % 2}", parent_id="p" if index < 2 else None))
        clock.advance(1)
    tracker.update_progress(ids[0], InProgress(percentage=5))
    tracker.complete_session(ids[1])

    newest_first = tracker.list_sessions()
    assert [s.id for s in newest_first] == ids[::-1]
    assert all(s.history == () for s in newest_first)
    assert [s.id for s in tracker.list_sessions(limit=2, offset=1)] == [ids[3], ids[2]]
    assert [s.id for s in tracker.list_sessions(status="completed")] == [ids[1]]
    active = tracker.list_sessions(status=["initializing", "in_progress"])
    assert {s.id for s in active} == set(ids) - {ids[1]}
    assert {s.id for s in tracker.list_sessions(operation_id="op0")} == {ids[0], ids[2], ids[4]}
    assert {s.id for s in tracker.list_sessions(parent_id="p")} == {ids[0], ids[1]}
    with pytest.raises(InvalidProgress, match="non-negative"):
        tracker.list_sessions(limit=-1)


def test_a_session_read_back_is_immutable(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()
    session_id = tracker.create_session("op")
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    session = tracker.get_session(session_id)
    with pytest.raises(ValueError, match="frozen"):
        session.operation_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("window_ms", [0, 500])
def test_metadata_is_stored_as_checked_whatever_the_caller_does_next(
    make_tracker: TrackerFactory, window_ms: int
) -> None:
    """The tracker keeps a JSON copy: a caller that goes on changing its dicts
    cannot slip an unchecked (non-JSON, oversized) value into the session."""
    tracker = make_tracker(update_interval_ms=window_ms)
    created = {"tags": ["a"]}
    session_id = tracker.create_session("op", created)
    sub_metadata = {"files": ["x"]}
    tracker.add_sub_operations(session_id, [SubOperation(id="s", name="S", metadata=sub_metadata)])
    tracker.start_sub_operation(session_id, "s")
    tracker.update_progress(session_id, InProgress(percentage=1))
    update = {"rows": [1]}
    sub_update = {"batch": [1]}
    tracker.update_progress(
        session_id,
        InProgress(percentage=2),
        [SubOperationUpdate(id="s", percentage=5, metadata=sub_update)],
        update,
    )
    values: list[list[object]] = [
        created["tags"],  # type: ignore[list-item]
        sub_metadata["files"],  # type: ignore[list-item]
        update["rows"],  # type: ignore[list-item]
        sub_update["batch"],  # type: ignore[list-item]
    ]
    for value in values:
        value.append(object())  # not JSON
    tracker.flush()
    session = tracker.get_session(session_id)
    assert session.percentage == 2
    assert session.metadata == {"tags": ["a"], "rows": [1]}
    assert session.sub_operations[0].metadata == {"files": ["x"], "batch": [1]}
    assert ProgressSession.model_validate_json(session.model_dump_json()) == session


METADATA = {"tags": ["a"], "nested": {"k": 1}}


def _scribble(value: object) -> None:
    """Change in place every dict and list within ``value``."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _scribble(item)
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("scribbled")


@pytest.mark.parametrize("window_ms", [0, 500], ids=["written", "pending"])
def test_changing_what_a_read_returned_changes_nothing_kept(
    make_tracker: TrackerFactory, window_ms: int
) -> None:
    tracker = make_tracker(update_interval_ms=window_ms, granularity_level="Verbose")
    session_id = tracker.create_session("op", METADATA)
    subs = [SubOperation(id="s", name="s", metadata={"x": {"y": 1}})]
    tracker.add_sub_operations(session_id, subs)
    tracker.update_progress(session_id, InProgress(percentage=10.0), metadata={"more": {"z": 1}})
    # With a window, this one waits in this process: get_session shows it.
    tracker.update_progress(session_id, InProgress(percentage=20.0), metadata={"late": {"w": 1}})
    subscription = tracker.subscribe_to_events(since=0)
    for read in (tracker.get_session(session_id), *tracker.list_sessions()):
        _scribble(read.metadata)
        for sub in read.sub_operations:
            _scribble(sub.metadata)
        for snapshot in read.history:
            _scribble(snapshot.metadata)
    for event in subscription.drain():
        _scribble(event.data)
    subscription.close()
    tracker.flush()

    kept = tracker.get_session(session_id)
    assert kept.metadata == {**METADATA, "more": {"z": 1}, "late": {"w": 1}}
    assert kept.sub_operations[0].metadata == {"x": {"y": 1}}
    assert all("scribbled" not in str(snapshot.metadata) for snapshot in kept.history)
    replayed = tracker.subscribe_to_events(since=0)
    created = replayed.drain()[0]
    replayed.close()
    assert created.data["metadata"] == METADATA
