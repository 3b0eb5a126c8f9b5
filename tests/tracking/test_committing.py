"""``Committer`` alone: every store write in order with its publication, and the
hand-off to the outage buffer."""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from typing import Any

import pytest

from celery_progress_mcp import (
    InvalidTransition,
    ProgressEvent,
    ProgressEventType,
    ProgressSession,
    SessionNotFound,
)
from celery_progress_mcp.core.errors import StoreUnavailable
from celery_progress_mcp.store.base import Mutation
from celery_progress_mcp.store.memory import MemoryStore

from .parts import Parts

E = ProgressEventType


class DownStore(MemoryStore):
    """A memory store that can be switched off."""

    down = False

    def apply(
        self, session_id: str, mutation: Mutation, *, history_limit: int
    ) -> tuple[ProgressSession, list[ProgressEvent]]:
        if self.down:
            raise StoreUnavailable("down")
        return super().apply(session_id, mutation, history_limit=history_limit)

    def health(self) -> dict[str, Any]:
        return {"status": "unavailable" if self.down else "ok"}


def test_a_commit_writes_the_pending_update_first_and_publishes_in_order() -> None:
    parts = Parts()
    session_id = parts.running()
    parts.hold(session_id, 30.0)
    parts.published.clear()

    session = parts.committer.commit(
        session_id, functools.partial(parts.engine.pause, reason="wait", now=parts.clock.now())
    )

    assert session is not None
    assert session.state.paused_at_percentage == 30.0  # type: ignore[union-attr]
    assert [e.event_type for e in parts.published] == [E.PROGRESS_UPDATED, E.SESSION_PAUSED]
    assert parts.windows.get(session_id).pending is None  # type: ignore[union-attr]


def test_a_refused_commit_writes_nothing_not_even_the_pending_update() -> None:
    parts = Parts()
    session_id = parts.running()
    parts.hold(session_id, 30.0)
    before = parts.store.last_seq()

    with pytest.raises(InvalidTransition):
        parts.committer.commit(
            session_id, functools.partial(parts.engine.resume, now=parts.clock.now())
        )

    assert parts.store.last_seq() == before
    assert parts.windows.get(session_id).pending is not None  # type: ignore[union-attr]


def test_a_stale_session_is_forgotten_when_the_store_refuses() -> None:
    parts = Parts()
    with pytest.raises(SessionNotFound):
        parts.committer.commit("nobody", parts.update(5.0))
    session_id = parts.running()
    parts.store.apply(
        session_id,
        functools.partial(parts.engine.cancel, reason="elsewhere", now=parts.clock.now()),
        history_limit=10,
    )
    with pytest.raises(InvalidTransition):
        parts.committer.commit(session_id, parts.update(50.0))
    assert parts.windows.get(session_id) is None


def test_while_the_store_is_down_writes_are_buffered_then_replayed_in_order() -> None:
    store = DownStore()
    parts = Parts(store=store)
    session_id = parts.running()
    store.down = True

    assert parts.committer.commit(session_id, parts.update(20.0)) is None
    assert parts.committer.commit(session_id, parts.update(30.0)) is None
    assert parts.committer.health()["status"] == "degraded"
    assert parts.committer.outage.report()["buffered"] == 2

    store.down = False
    assert parts.committer.outage.drain()
    assert store.get(session_id).percentage == 30.0  # type: ignore[union-attr]
    assert parts.committer.health()["status"] == "ok"


def test_flush_due_writes_only_windows_that_have_ended() -> None:
    parts = Parts()
    ended, open_ = parts.running("ended"), parts.running("open")
    parts.hold(ended, 10.0).deadline_s = 1.0
    parts.hold(open_, 20.0).deadline_s = 5.0
    parts.clock.advance(2.0)

    parts.committer.flush_due([ended, open_])

    assert parts.store.get(ended).percentage == 10.0  # type: ignore[union-attr]
    assert parts.store.get(open_).percentage == 1.0  # type: ignore[union-attr]
    parts.committer.flush_pending()
    assert parts.store.get(open_).percentage == 20.0  # type: ignore[union-attr]


def test_a_refused_run_is_logged_and_the_session_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    parts = Parts()
    session_id = parts.running()
    parts.committer.commit(
        session_id, functools.partial(parts.engine.cancel, reason="x", now=parts.clock.now())
    )
    parts.running("other")
    with (
        caplog.at_level(logging.DEBUG, logger="celery_progress_mcp.tracking.committing"),
        parts.locks.commit,
    ):
        parts.committer.write_runs(
            [(session_id, [parts.update(5.0), parts.update(6.0)]), ("other", [parts.update(7.0)])]
        )
    assert "dropped 2 queued update(s)" in caplog.text
    assert parts.store.get("other").percentage == 7.0  # type: ignore[union-attr]


def test_purging_publishes_an_expired_event_per_session() -> None:
    parts = Parts()
    session_id = parts.running()
    parts.committer.commit(
        session_id,
        functools.partial(parts.engine.complete, result_summary=None, now=parts.clock.now()),
    )
    parts.published.clear()
    parts.clock.advance(10)

    removed = parts.committer.purge_finished(parts.clock.now() - timedelta(seconds=1))

    assert removed == 1
    assert [(e.session_id, e.event_type) for e in parts.published] == [
        (session_id, E.SESSION_EXPIRED)
    ]
