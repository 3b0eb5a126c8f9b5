"""``UpdateCalls``: a held update as the engine call that writes it, with the ETA."""

from __future__ import annotations

from datetime import timedelta

from celery_progress_mcp import Cancelled, InProgress
from celery_progress_mcp.tracking.held_updates import Pending

from .parts import Parts


def test_the_check_is_dated_when_the_update_was_made_and_estimates_nothing() -> None:
    parts = Parts()
    session = parts.store.get(parts.running())
    assert session is not None
    made_at_s = parts.clock.monotonic()
    parts.clock.advance(3)
    item = Pending(InProgress(percentage=50.0), made_at_s, 0.0)

    for _ in range(3):  # no side effect: the same answer every time
        change = parts.calls.update_of(item)(session)
        assert change.session.updated_at == parts.clock.now() - timedelta(seconds=3)
        assert change.session.state.eta_seconds is None  # type: ignore[union-attr]


def test_the_write_feeds_the_sessions_estimator() -> None:
    parts = Parts()
    session_id = parts.running(percentage=0.0)
    session = parts.store.get(session_id)
    assert session is not None
    etas = []
    for percentage in (10.0, 20.0, 30.0):
        parts.clock.advance(1)
        item = Pending(InProgress(percentage=percentage), parts.clock.monotonic(), 0.0)
        session = parts.calls.mutation(session_id, item)(session).session
        etas.append(session.state.eta_seconds)  # type: ignore[union-attr]
    assert etas[-1] is not None
    assert etas[-1] > 0

    parts.calls.forget(session_id)
    item = Pending(InProgress(percentage=40.0), parts.clock.monotonic(), 0.0)
    fresh = parts.calls.mutation(session_id, item)(session).session
    assert fresh.state.eta_seconds is None  # type: ignore[union-attr]


def test_apply_pending_is_none_when_the_update_no_longer_applies() -> None:
    parts = Parts()
    session = parts.store.get(parts.running())
    assert session is not None
    item = Pending(InProgress(percentage=60.0), parts.clock.monotonic(), 0.0)
    applied = parts.calls.apply_pending(session, item)
    assert applied is not None
    assert applied.percentage == 60.0
    cancelled = session.replace(state=Cancelled(cancelled_at=parts.clock.now()))
    assert parts.calls.apply_pending(cancelled, item) is None
