"""The issue's own bad input, through the tracker on each store: refused at the
call, nothing changed, and nothing raised later by ``flush()`` or ``close()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from celery_progress_mcp import InProgress, InvalidProgress, ProgressTracker
from celery_progress_mcp.core.clock import SystemClock

from .conftest import TrackerFactory

BAD: list[tuple[str, Callable[[ProgressTracker, str], Any], str]] = [
    (
        "a step of 1 MB",
        lambda t, s: t.update_progress(s, InProgress(percentage=5, current_step="x" * 2**20)),
        r"current_step is 1048576 characters long, over the limit: at most 1024",
    ),
    (
        "a lone surrogate in the step",
        lambda t, s: t.update_progress(s, InProgress(percentage=5, current_step="a\udc80")),
        r"current_step is not valid UTF-8",
    ),
    (
        'the string "50" as a percentage',
        lambda t, s: t.update_progress(s, InProgress(percentage="50")),
        r"percentage: Input should be a valid number",
    ),
    (
        "step 10 of 2",
        lambda t, s: t.update_progress(s, InProgress(current_step_number=10, total_steps=2)),
        r"current_step_number 10 is past total_steps 2",
    ),
    (
        "a metadata key that is not a string",
        lambda t, s: t.update_progress(s, InProgress(percentage=5), metadata={1: "a"}),
        r"metadata has the key 1 of type int",
    ),
    (
        "an operation id of 1 MB",
        lambda t, s: t.create_session("o" * 2**20),
        r"operation_id is 1048576 characters long, over the limit: at most 255",
    ),
]


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@pytest.mark.parametrize(("name", "call", "message"), BAD, ids=[name for name, _, _ in BAD])
def test_bad_input_is_refused_at_the_call_and_nothing_fails_later(
    make_tracker: TrackerFactory,
    name: str,
    call: Callable[[ProgressTracker, str], Any],
    message: str,
) -> None:
    # The real clock and no window: with SQLite, updates go through the
    # write-behind queue, where a refusal could otherwise surface only later.
    tracker = make_tracker(clock=SystemClock(), update_interval_ms=0)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=1))
    tracker.flush()
    before = tracker.get_session(session_id)
    count = tracker.count_sessions()
    with pytest.raises(InvalidProgress, match=message):
        call(tracker, session_id)
    tracker.flush()
    assert tracker.get_session(session_id) == before
    assert tracker.count_sessions() == count
    tracker.close()


@pytest.mark.parametrize("store_kind", ["memory"])
def test_a_coalesced_update_is_bounded_at_the_call(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()  # the default window: the second update is held back
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=1))
    with pytest.raises(InvalidProgress, match="current_step"):
        tracker.update_progress(session_id, InProgress(percentage=2, current_step="x" * 5000))
