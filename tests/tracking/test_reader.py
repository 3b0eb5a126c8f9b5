"""``Reader`` alone: the committed session with what this process holds back applied."""

from __future__ import annotations

import functools

import pytest

from celery_progress_mcp import InProgress, InvalidProgress, SessionNotFound
from celery_progress_mcp.tracking.held_updates import Pending
from celery_progress_mcp.tracking.reading import Reader, session_query

from .parts import Parts


def reader(parts: Parts) -> Reader:
    return Reader(parts.store, parts.shared)


def test_a_pending_update_shows_at_once_with_the_stores_history() -> None:
    parts = Parts()
    session_id = parts.running()
    parts.hold(session_id, 42.0)

    session = reader(parts).get_session(session_id)

    assert session.percentage == 42.0
    assert session.history == parts.store.get(session_id).history  # type: ignore[union-attr]


def test_queued_updates_show_unless_the_session_moved_on_elsewhere() -> None:
    parts = Parts()
    session_id = parts.running()
    window = parts.windows.get(session_id)
    assert window is not None
    item = Pending(InProgress(percentage=70.0), parts.clock.monotonic(), 0.0)
    parts.windows.queue(session_id, item, parts.calls.update_of(item)(window.session).session)
    assert reader(parts).get_session(session_id).percentage == 70.0

    cancel = functools.partial(parts.engine.cancel, reason="x", now=parts.clock.now())
    parts.store.apply(session_id, cancel, history_limit=10)
    assert reader(parts).get_session(session_id).status == "cancelled"


def test_a_reader_gets_its_own_copy_of_the_metadata() -> None:
    parts = Parts()
    session_id = parts.running()
    parts.hold(session_id, 5.0).metadata = {"nested": {"k": 1}}
    view = reader(parts).get_session(session_id)
    view.metadata["nested"]["k"] = 99
    assert reader(parts).get_session(session_id).metadata == {"nested": {"k": 1}}


def test_an_unknown_session_is_not_found() -> None:
    with pytest.raises(SessionNotFound):
        reader(Parts()).get_session("nobody")


def test_session_query_checks_its_filters() -> None:
    assert session_query("completed", None, None, None, 10, 0).statuses == ["completed"]
    with pytest.raises(InvalidProgress, match="non-negative"):
        session_query(None, None, None, None, -1, 0)
    with pytest.raises(InvalidProgress, match="unknown session status"):
        session_query(["done"], None, None, None, 10, 0)
