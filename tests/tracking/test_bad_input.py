"""Bad input: each raises its specific error, with a message naming the problem,
and leaves everything as it was (session with history, stats, event log).

Every row runs with the window at 0 and with the default window while an
update is pending, since a refused call must not write the pending one out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from celery_progress_mcp import (
    CapacityExceeded,
    ConfigError,
    InProgress,
    InvalidProgress,
    InvalidTransition,
    ProgressConfig,
    ProgressError,
    ProgressTracker,
    SessionNotFound,
    SubOperation,
    SubOperationNotFound,
    SubOperationUpdate,
)

from .conftest import TrackerFactory

MAX_METADATA_BYTES = 1024


@dataclass(frozen=True)
class Ids:
    running: str  # in progress, sub-operations "load" (done) and "train" (active)
    done: str  # completed
    paused: str
    tmp_path: Path


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[ProgressTracker, Ids], object]
    error: type[ProgressError]
    message: str  # a regular expression the message must match
    target: str = "running"  # the session that must stay as it was


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


CASES = [
    Case(
        "nan percentage",
        lambda t, ids: t.update_progress(ids.running, InProgress(percentage=float("nan"))),
        InvalidProgress,
        r"percentage: .*finite",
    ),
    Case(
        "+inf percentage",
        lambda t, ids: t.update_progress(ids.running, InProgress(percentage=float("inf"))),
        InvalidProgress,
        r"percentage: .*finite",
    ),
    Case(
        "-inf percentage",
        lambda t, ids: t.update_progress(ids.running, InProgress(percentage=float("-inf"))),
        InvalidProgress,
        r"percentage: .*finite",
    ),
    Case(
        "-1 percentage",
        lambda t, ids: t.update_progress(ids.running, InProgress(percentage=-1)),
        InvalidProgress,
        r"percentage: .*greater than or equal to 0",
    ),
    Case(
        "100.5 percentage",
        lambda t, ids: t.update_progress(ids.running, InProgress(percentage=100.5)),
        InvalidProgress,
        r"percentage: .*less than or equal to 100",
    ),
    Case(
        "non-JSON metadata",
        lambda t, ids: t.update_progress(
            ids.running, InProgress(percentage=50), metadata={"when": datetime.now(UTC)}
        ),
        InvalidProgress,
        r"metadata is not JSON-serializable.*datetime",
    ),
    Case(
        "NaN in metadata",
        lambda t, ids: t.update_progress(
            ids.running, InProgress(percentage=50), metadata={"ratio": float("nan")}
        ),
        InvalidProgress,
        r"metadata is not JSON-serializable",
    ),
    Case(
        "oversized metadata",
        lambda t, ids: t.update_progress(
            ids.running, InProgress(percentage=50), metadata={"blob": "x" * MAX_METADATA_BYTES}
        ),
        InvalidProgress,
        rf"metadata is \d+ bytes as JSON, over the {MAX_METADATA_BYTES}-byte limit",
    ),
    Case(
        "metadata oversized once merged",
        lambda t, ids: t.update_progress(
            ids.running, InProgress(percentage=50), metadata={"more": "y" * 700}
        ),
        InvalidProgress,
        r"merged metadata is \d+ bytes",
    ),
    Case(
        "oversized sub-operation metadata",
        lambda t, ids: t.update_progress(
            ids.running,
            InProgress(percentage=50),
            [SubOperationUpdate(id="train", percentage=5, metadata={"blob": "x" * 2000})],
        ),
        InvalidProgress,
        r"metadata of sub-operation 'train' is \d+ bytes",
    ),
    Case(
        "non-JSON creation metadata",
        lambda t, ids: t.create_session("op", {"handle": object()}),
        InvalidProgress,
        r"not JSON-serializable",
    ),
    Case(
        "unknown session",
        lambda t, ids: t.update_progress("no-such-session", InProgress(percentage=5)),
        SessionNotFound,
        r"session not found: 'no-such-session'",
    ),
    Case(
        "unknown session on a transition",
        lambda t, ids: t.complete_session("no-such-session"),
        SessionNotFound,
        r"'no-such-session'",
    ),
    Case(
        "unknown sub-operation in an update",
        lambda t, ids: t.update_progress(
            ids.running, InProgress(percentage=50), [SubOperationUpdate(id="ghost", percentage=5)]
        ),
        SubOperationNotFound,
        r"sub-operation 'ghost' not found",
    ),
    Case(
        "unknown sub-operation started",
        lambda t, ids: t.start_sub_operation(ids.running, "ghost"),
        SubOperationNotFound,
        r"sub-operation 'ghost' not found",
    ),
    Case(
        "update of a finished sub-operation",
        lambda t, ids: t.update_progress(
            ids.running, InProgress(percentage=50), [SubOperationUpdate(id="load", percentage=5)]
        ),
        InvalidTransition,
        r"sub-operation 'load' .* already completed",
    ),
    Case(
        "finished sub-operation completed again",
        lambda t, ids: t.complete_sub_operation(ids.running, "load"),
        InvalidTransition,
        r"sub-operation 'load' .*completed",
    ),
    Case(
        "duplicate sub-operation id",
        lambda t, ids: t.add_sub_operations(ids.running, [SubOperation(id="load", name="again")]),
        InvalidProgress,
        r"duplicate sub-operation id 'load'",
    ),
    Case(
        "duplicate sub-operation id within one call",
        lambda t, ids: t.add_sub_operations(
            ids.running, [SubOperation(id="x", name="X"), SubOperation(id="x", name="X")]
        ),
        InvalidProgress,
        r"duplicate sub-operation id 'x'",
    ),
    Case(
        "update after completion",
        lambda t, ids: t.update_progress(ids.done, InProgress(percentage=50)),
        InvalidTransition,
        r"completed -> in_progress.*terminal states are final",
        target="done",
    ),
    Case(
        "completion after completion",
        lambda t, ids: t.complete_session(ids.done, "again"),
        InvalidTransition,
        r"already completed",
        target="done",
    ),
    Case(
        "resume when not paused",
        lambda t, ids: t.resume_session(ids.running),
        InvalidTransition,
        r"not paused: nothing to resume",
    ),
    Case(
        "pause when paused",
        lambda t, ids: t.pause_session(ids.paused),
        InvalidTransition,
        r"already paused",
        target="paused",
    ),
    Case(
        "progress while paused",
        lambda t, ids: t.update_progress(ids.paused, InProgress(percentage=60)),
        InvalidTransition,
        r"paused; resume it",
        target="paused",
    ),
    Case(
        "empty operation id",
        lambda t, ids: t.create_session(""),
        InvalidProgress,
        r"operation_id must be a non-empty string",
    ),
    Case(
        "blank operation id",
        lambda t, ids: t.create_session("   "),
        InvalidProgress,
        r"operation_id",
    ),
    Case(
        "duplicate session id",
        lambda t, ids: t.create_session("op", session_id=ids.running),
        InvalidProgress,
        r"already exists",
    ),
    Case(
        "unknown event type",
        lambda t, ids: t.subscribe_to_events(event_types=["SessionExploded"]),
        InvalidProgress,
        r"unknown event type",
    ),
    Case(
        "unknown status filter",
        lambda t, ids: t.list_sessions(status="exploded"),
        InvalidProgress,
        r"unknown session status",
    ),
    Case(
        "malformed YAML config",
        lambda t, ids: ProgressConfig.from_yaml(
            write_yaml(ids.tmp_path / "bad.yaml", "progress: {enabled: [true\n")
        ),
        ConfigError,
        r"bad\.yaml: malformed YAML",
    ),
    Case(
        "bad YAML config value",
        lambda t, ids: ProgressConfig.from_yaml(
            write_yaml(ids.tmp_path / "bad.yaml", "progress:\n  update_interval_ms: soon\n")
        ),
        ConfigError,
        r"bad\.yaml.*update_interval_ms",
    ),
]


def prepare(make_tracker: TrackerFactory, window_ms: int, tmp_path: Path) -> tuple[Any, Ids]:
    tracker = make_tracker(update_interval_ms=window_ms, max_metadata_bytes=MAX_METADATA_BYTES)
    running = tracker.create_session("train", {"owner": "x" * 300})
    tracker.add_sub_operations(
        running, [SubOperation(id="load", name="Load"), SubOperation(id="train", name="Train")]
    )
    tracker.start_sub_operation(running, "load")
    tracker.complete_sub_operation(running, "load")
    tracker.start_sub_operation(running, "train")
    tracker.update_progress(running, InProgress(percentage=10))
    # With a window, this one is pending when the bad call comes.
    tracker.update_progress(running, InProgress(percentage=20), metadata={"note": "y" * 100})
    done = tracker.create_session("report")
    tracker.complete_session(done, "ok")
    paused = tracker.create_session("sync")
    tracker.update_progress(paused, InProgress(percentage=40))
    tracker.pause_session(paused, "maintenance")
    return tracker, Ids(running, done, paused, tmp_path)


@pytest.mark.parametrize("window_ms", [0, 500])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_raises_its_error_and_changes_nothing(
    make_tracker: TrackerFactory, tmp_path: Path, case: Case, window_ms: int
) -> None:
    tracker, ids = prepare(make_tracker, window_ms, tmp_path)
    if window_ms:
        committed = tracker.store.get(ids.running)
        assert committed is not None
        assert "note" not in committed.metadata  # the setup's premise: the update is pending
    target = getattr(ids, case.target)
    before = (
        [tracker.get_session(sid) for sid in (ids.running, ids.done, ids.paused)],
        tracker.get_stats(),
        tracker.store.last_seq(),
        tracker.list_sessions(),
    )

    with pytest.raises(case.error) as raised:
        case.call(tracker, ids)

    assert type(raised.value) is case.error
    assert re.search(case.message, str(raised.value)), str(raised.value)
    after = (
        [tracker.get_session(sid) for sid in (ids.running, ids.done, ids.paused)],
        tracker.get_stats(),
        tracker.store.last_seq(),
        tracker.list_sessions(),
    )
    assert after == before
    # The session keeps working afterwards.
    if tracker.get_session(target).status == "in_progress":
        tracker.update_progress(target, InProgress(percentage=90))
        tracker.flush()
        assert tracker.get_session(target).percentage == 90


def test_capacity_exceeded_names_the_limit(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker(max_concurrent_sessions=2)
    tracker.create_session("a")
    tracker.create_session("b")
    before = tracker.get_stats()
    with pytest.raises(CapacityExceeded, match=r"max_concurrent_sessions.*2"):
        tracker.create_session("c")
    assert tracker.get_stats() == before
