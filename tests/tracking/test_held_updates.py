"""``Windows``: the write-behind queue's order and count across sessions."""

from __future__ import annotations

from datetime import UTC, datetime

from celery_progress_mcp import InProgress, ProgressConfig
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.core.models import ProgressSession
from celery_progress_mcp.tracking.held_updates import Pending, Windows

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ENGINE = Engine(ProgressConfig())


def running(session_id: str) -> ProgressSession:
    created = ENGINE.create(session_id=session_id, operation_id="op", now=NOW).session
    return ENGINE.update(created, InProgress(percentage=1.0), now=NOW).session


def item(percentage: float) -> Pending:
    return Pending(InProgress(percentage=percentage), 0.0, 0.0)


def percentages(items: list[Pending]) -> list[float | None]:
    return [i.state.percentage for i in items]


def test_the_writer_takes_sessions_in_the_order_they_first_queued() -> None:
    windows = Windows()
    for session_id in ("a", "b"):
        windows.written(running(session_id), 0.0)
    windows.queue("b", item(10), running("b"))
    windows.queue("a", item(20), running("a"))
    windows.queue("b", item(30), running("b"))
    assert windows.queued_count == 3
    taken = windows.take(None)
    assert [(sid, percentages(items)) for sid, items in taken] == [
        ("b", [10, 30]),
        ("a", [20]),
    ]
    assert windows.queued_count == 0
    assert not windows.has_queued


def test_taken_updates_are_in_flight_until_the_store_answers() -> None:
    windows = Windows()
    windows.written(running("a"), 0.0)
    windows.queue("a", item(10), running("a"))
    windows.queue("a", item(20), running("a"))
    window = windows.get("a")
    assert window is not None
    windows.take(None)
    assert window.in_flight == 2
    assert window.ahead()
    windows.landed({"a": 2})
    assert window.in_flight == 0
    assert not window.ahead()


def test_a_limit_takes_whole_sessions_and_leaves_the_rest_queued() -> None:
    windows = Windows()
    for session_id in ("a", "b", "c"):
        windows.written(running(session_id), 0.0)
        windows.queue(session_id, item(10), running(session_id))
        windows.queue(session_id, item(20), running(session_id))
    taken = windows.take(3)
    assert [sid for sid, _ in taken] == ["a", "b"]
    assert windows.queued_count == 2
    assert [sid for sid, _ in windows.take(None)] == ["c"]


def test_one_session_taken_at_once_goes_queued_first_then_pending() -> None:
    windows = Windows()
    windows.written(running("a"), 0.0)
    windows.queue("a", item(10), running("a"))
    window = windows.get("a")
    assert window is not None
    window.pending = item(20)
    assert windows.with_pending() == ["a"]
    assert percentages(windows.take_session("a")) == [10, 20]
    assert windows.queued_count == 0
    assert windows.take(None) == []
    assert windows.take_session("a") == []


def test_forgetting_a_session_drops_its_queue_from_the_count_and_the_order() -> None:
    windows = Windows()
    for session_id in ("a", "b"):
        windows.written(running(session_id), 0.0)
        windows.queue(session_id, item(10), running(session_id))
    windows.forget("a")
    assert windows.get("a") is None
    assert windows.queued_count == 1
    assert [sid for sid, _ in windows.take(None)] == ["b"]


def test_a_write_does_not_move_a_view_that_is_ahead_of_the_store() -> None:
    windows = Windows()
    stored = running("a")
    windows.written(stored, 0.0)
    ahead = ENGINE.update(stored, InProgress(percentage=50.0), now=NOW).session
    windows.queue("a", item(50), ahead)
    windows.written(stored, 1.0)
    window = windows.get("a")
    assert window is not None
    assert window.session is ahead
    assert window.last_write_s == 1.0
