"""``Coalescer`` alone: what it holds back, what it lets through to a write."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from celery_progress_mcp import InProgress, InvalidProgress, ProgressConfig, SubOperationUpdate
from celery_progress_mcp.testing import FakeClock
from celery_progress_mcp.tracking.coalescing import Coalescer, own_copy
from celery_progress_mcp.tracking.flusher import WindowFlusher

from .parts import Parts

WINDOW_S = 0.5


class Flushes:
    def __init__(self) -> None:
        self.due: list[str] = []

    def flush_due(self, session_ids: Iterable[str]) -> None:
        self.due.extend(session_ids)


def coalescer(parts: Parts, flushes: Flushes) -> Coalescer:
    flusher = WindowFlusher(parts.clock, flushes.flush_due, 1e6, lambda: None)
    return Coalescer(parts.shared, flusher, WINDOW_S)


def test_an_update_within_the_window_is_held_and_its_end_scheduled_once() -> None:
    parts, flushes = Parts(), Flushes()
    coalesce = coalescer(parts, flushes).coalesce
    session_id = parts.running()

    assert coalesce(session_id, InProgress(percentage=10.0), (), {"a": 1})
    parts.clock.advance(0.1)
    assert coalesce(session_id, InProgress(percentage=20.0), (), {"b": 2})

    pending = parts.windows.get(session_id).pending  # type: ignore[union-attr]
    assert pending is not None
    assert (pending.state.percentage, pending.metadata) == (20.0, {"a": 1, "b": 2})
    assert flushes.due == []
    parts.clock.advance(WINDOW_S)
    assert flushes.due == [session_id]


def test_what_it_does_not_hold_goes_on_to_a_write() -> None:
    parts, flushes = Parts(), Flushes()
    coalesce = coalescer(parts, flushes).coalesce
    assert not coalesce("unknown", InProgress(percentage=10.0), (), None)
    session_id = parts.running()
    unknown_sub = [SubOperationUpdate(id="nope", percentage=5.0)]
    assert not coalesce(session_id, InProgress(percentage=10.0), unknown_sub, None)
    parts.clock.advance(WINDOW_S)
    assert not coalesce(session_id, InProgress(percentage=10.0), (), None)  # the window ended
    assert parts.windows.get(session_id).pending is None  # type: ignore[union-attr]


def test_bad_metadata_raises_before_anything_is_held() -> None:
    parts = Parts(config=ProgressConfig(max_metadata_bytes=64), clock=FakeClock())
    coalesce = coalescer(parts, Flushes()).coalesce
    session_id = parts.running()
    with pytest.raises(InvalidProgress):
        coalesce(session_id, InProgress(percentage=10.0), (), {"big": "x" * 100})
    assert parts.windows.get(session_id).pending is None  # type: ignore[union-attr]


def test_own_copy_shares_no_metadata_with_the_caller() -> None:
    parts = Parts()
    nested = {"k": [1]}
    update = SubOperationUpdate(id="a", metadata={"nested": nested})
    copied = own_copy(parts.engine, update)
    nested["k"].append(2)
    assert copied.metadata == {"nested": {"k": [1]}}
    plain = SubOperationUpdate(id="a", percentage=1.0)
    assert own_copy(parts.engine, plain) is plain
