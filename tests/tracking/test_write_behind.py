"""Write-behind on the SQL stores: plain updates queued, written many per transaction.

These trackers run on the system clock with their threads, as in production
(the rest of the tracker suite uses a fake clock, and writes in the caller's
thread).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest

from celery_progress_mcp import (
    InProgress,
    InvalidProgress,
    InvalidTransition,
    ProgressConfig,
    ProgressEvent,
    ProgressTracker,
    SessionStatus,
    SubOperation,
    SubOperationNotFound,
    SubOperationUpdate,
)
from celery_progress_mcp.store.base import Applied, Write
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.tracking import write_behind


class CountingStore(SqlStore):
    """A real SQL store that records the size of each ``apply_many`` batch."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []

    def apply_many(
        self,
        writes: Sequence[tuple[str, Sequence[Write]]],
        *,
        history_limit: int,
        max_active: int | None = None,
    ) -> list[Applied]:
        self.batches.append(sum(len(mutations) for _, mutations in writes))
        return super().apply_many(writes, history_limit=history_limit, max_active=max_active)


@pytest.fixture
def store(sql_store_url: str) -> Iterator[CountingStore]:
    store = CountingStore(sql_store_url)
    yield store
    store.close()


@pytest.fixture
def tracker(store: CountingStore) -> Iterator[ProgressTracker]:
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    yield tracker
    tracker.close()


def logged(store: SqlStore, session_id: str) -> list[ProgressEvent]:
    events: list[ProgressEvent] = []
    since = 0
    while page := store.events_since(since, session_id=session_id):
        events.extend(page)
        since = page[-1].seq
    return events


def started(tracker: ProgressTracker) -> str:
    """A session created and started, both written (they are queued too): the
    batches counted from here on are the test's own."""
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=0.0))
    written(tracker)
    return session_id


def written(tracker: ProgressTracker) -> None:
    """Everything queued written, and the batch count started afresh."""
    tracker.flush()
    store = tracker.store
    assert isinstance(store, CountingStore)
    store.batches.clear()


def test_every_queued_update_is_committed_in_order_with_its_own_snapshot_and_event(
    tracker: ProgressTracker, store: CountingStore
) -> None:
    session_id = started(tracker)
    for i in range(1, 301):
        tracker.update_progress(session_id, InProgress(percentage=i / 3, current_step=f"s{i}"))
    tracker.flush()

    steps = [
        e.data["current_step"] for e in logged(store, session_id) if e.data.get("current_step")
    ]
    assert steps == [f"s{i}" for i in range(1, 301)]
    committed = store.get(session_id)
    assert committed is not None
    assert committed.state == InProgress(
        percentage=100.0, current_step="s300", eta_seconds=committed.state.eta_seconds
    )
    assert committed.history[-1].state.current_step == "s300"  # type: ignore[union-attr]
    assert sum(store.batches) == 300


def test_updates_queued_meanwhile_are_committed_in_one_transaction(
    tracker: ProgressTracker, store: CountingStore
) -> None:
    session_id = started(tracker)
    # Holding the tracker's state lock keeps the writer out while the updates queue up.
    with tracker._shared.locks.state:
        for i in range(1, 51):
            tracker.update_progress(session_id, InProgress(percentage=i))
    tracker.flush()
    assert store.batches == [50]
    assert [e.data["percentage"] for e in logged(store, session_id)][-50:] == list(range(1, 51))


def test_get_session_shows_a_queued_update_at_once(
    tracker: ProgressTracker, store: CountingStore
) -> None:
    session_id = started(tracker)
    with tracker._shared.locks.state:
        tracker.update_progress(session_id, InProgress(percentage=42.0, current_step="queued"))
        assert tracker.get_session(session_id).state.current_step == "queued"  # type: ignore[union-attr]
        committed = store.get(session_id)
        assert committed is not None
        assert committed.percentage == 0.0


def test_a_transition_writes_the_queued_updates_first(
    tracker: ProgressTracker, store: CountingStore
) -> None:
    session_id = started(tracker)
    with tracker._shared.locks.state:
        for i in range(1, 11):
            tracker.update_progress(session_id, InProgress(percentage=i * 10.0))
        tracker.complete_session(session_id, "done")
    tracker.flush()  # the completion is queued behind them
    events = logged(store, session_id)
    updates = [e.data["percentage"] for e in events if e.event_type == "ProgressUpdated"]
    assert updates[-10:] == [i * 10.0 for i in range(1, 11)]
    last_update = max(e.seq for e in events if e.event_type == "ProgressUpdated")
    assert [e.event_type for e in events if e.seq > last_update] == ["SessionCompleted"]
    assert tracker.get_session(session_id).state.status == SessionStatus.COMPLETED


def test_a_bad_update_raises_in_the_caller_and_nothing_is_queued(
    tracker: ProgressTracker, store: CountingStore
) -> None:
    session_id = started(tracker)
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    written(tracker)  # queued too
    with pytest.raises(InvalidProgress, match="metadata"):
        tracker.update_progress(session_id, InProgress(percentage=5.0), metadata={"x": object()})
    with pytest.raises(SubOperationNotFound, match="nope"):
        tracker.update_progress(
            session_id,
            InProgress(percentage=5.0),
            sub_operation_updates=[SubOperationUpdate(id="nope", percentage=1.0)],
        )
    tracker.flush()
    assert store.batches == []
    assert tracker.get_session(session_id).percentage == 0.0


def test_queued_updates_of_a_session_cancelled_elsewhere_are_dropped(
    tracker: ProgressTracker,
    store: CountingStore,
    sql_store_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session_id = started(tracker)
    elsewhere = SqlStore(sql_store_url)
    other = ProgressTracker(ProgressConfig(update_interval_ms=0), store=elsewhere)
    try:
        with caplog.at_level(logging.DEBUG, logger="celery_progress_mcp.tracking.committing"):
            with tracker._shared.locks.state:
                tracker.update_progress(session_id, InProgress(percentage=50.0))
                other.cancel_session(session_id, "stopped by another process")
                # The store's truth wins over the queued update, before it is written.
                assert tracker.get_session(session_id).state.status == SessionStatus.CANCELLED
            tracker.flush()
    finally:
        other.close()
        elsewhere.close()
    session = tracker.get_session(session_id)
    assert session.state.status == SessionStatus.CANCELLED
    assert "dropped 1 queued update" in caplog.text
    # The tracker forgot what it knew: the next update asks the store and is refused.
    with pytest.raises(InvalidTransition):
        tracker.update_progress(session_id, InProgress(percentage=60.0))


def test_close_writes_what_is_queued(store: CountingStore) -> None:
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    session_id = started(tracker)
    with tracker._shared.locks.state:
        for i in range(1, 21):
            tracker.update_progress(session_id, InProgress(percentage=i))
    tracker.close()
    committed = store.get(session_id)
    assert committed is not None
    assert committed.percentage == 20.0


def test_a_full_queue_holds_the_caller_back_and_loses_nothing(
    store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "MAX_QUEUED_UPDATES", 20)
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    try:
        session_id = started(tracker)
        queue = tracker._queue
        assert queue is not None
        for i in range(1, 401):
            tracker.update_progress(session_id, InProgress(percentage=i / 4))
            assert queue.queued_count <= 20
        tracker.flush()
    finally:
        tracker.close()
    percentages = [e.data["percentage"] for e in logged(store, session_id)][-400:]
    assert percentages == [i / 4 for i in range(1, 401)]


def test_without_its_writer_a_caller_writes_the_full_queue_itself(
    store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "MAX_QUEUED_UPDATES", 10)
    monkeypatch.setattr(write_behind, "ROOM_WAIT_S", 0.05)
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    try:
        session_id = started(tracker)
        assert tracker._queue is not None
        tracker._queue.writer.stop()  # as after a fork: the thread is gone
        for i in range(1, 31):
            tracker.update_progress(session_id, InProgress(percentage=i))
        committed = store.get(session_id)
        assert committed is not None
        assert committed.percentage >= 10  # written by the caller, not the writer
    finally:
        tracker.close()
    assert store.get(session_id).percentage == 30  # type: ignore[union-attr]


def test_changing_the_view_of_a_queued_update_changes_nothing_written(
    tracker: ProgressTracker, store: CountingStore
) -> None:
    session_id = tracker.create_session("op", {"nested": {"k": 1}})
    tracker.update_progress(session_id, InProgress(percentage=0.0))
    with tracker._shared.locks.state:
        tracker.update_progress(session_id, InProgress(percentage=1.0), metadata={"more": {"z": 1}})
        view = tracker.get_session(session_id)
        view.metadata["nested"]["k"] = 99
        view.metadata["more"]["z"] = 99
    tracker.flush()
    # The next update is made on what the store keeps of the session.
    tracker.update_progress(session_id, InProgress(percentage=2.0))
    tracker.flush()
    written = store.get(session_id)
    assert written is not None
    assert written.metadata == {"nested": {"k": 1}, "more": {"z": 1}}
