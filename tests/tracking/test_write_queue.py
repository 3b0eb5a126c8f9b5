"""``WriteQueue`` and ``BatchWriter`` alone: queueing checked updates, writing them in batches."""

from __future__ import annotations

import threading

import pytest

from celery_progress_mcp import InProgress, SubOperationNotFound, SubOperationUpdate
from celery_progress_mcp.core.errors import StoreUnavailable
from celery_progress_mcp.testing import eventually
from celery_progress_mcp.tracking import write_behind
from celery_progress_mcp.tracking.write_behind import BatchWriter, WriteQueue

from .parts import Parts


@pytest.fixture
def parts() -> Parts:
    return Parts()


@pytest.fixture
def queue(parts: Parts) -> WriteQueue:
    """A queue whose writer thread is stopped: the test writes batches itself."""
    queue = WriteQueue(parts.shared, parts.committer)
    queue.writer.stop()
    return queue


def percentage(parts: Parts, session_id: str) -> float:
    session = parts.store.get(session_id)
    assert session is not None
    return session.percentage


def test_a_queued_update_is_seen_at_once_and_written_with_the_next_batch(
    parts: Parts, queue: WriteQueue
) -> None:
    session_id = parts.running()
    parts.hold(session_id, 5.0)  # the coalesced update came first: it goes first
    assert queue.enqueue(session_id, InProgress(percentage=10.0), (), None)

    assert queue.queued_count == 2
    assert parts.windows.get(session_id).session.percentage == 10.0  # type: ignore[union-attr]
    assert percentage(parts, session_id) == 1.0
    parts.published.clear()
    assert queue.write_queued() is False
    assert percentage(parts, session_id) == 10.0
    assert [e.data["percentage"] for e in parts.published] == [5.0, 10.0]
    assert queue.queued_count == 0


def test_what_it_cannot_queue_goes_on_to_a_write(parts: Parts, queue: WriteQueue) -> None:
    assert not queue.enqueue("unknown", InProgress(percentage=10.0), (), None)
    session_id = parts.running()
    parts.committer.outage.add(session_id, parts.update(2.0), StoreUnavailable("down"))
    assert not queue.enqueue(session_id, InProgress(percentage=10.0), (), None)
    assert queue.queued_count == 0


def test_a_bad_update_raises_and_nothing_is_queued(parts: Parts, queue: WriteQueue) -> None:
    session_id = parts.running()
    with pytest.raises(SubOperationNotFound):
        queue.enqueue(
            session_id, InProgress(percentage=10.0), [SubOperationUpdate(id="nope")], None
        )
    assert queue.queued_count == 0


def test_a_full_queue_without_its_writer_is_written_by_the_caller(
    parts: Parts, queue: WriteQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "MAX_QUEUED_UPDATES", 2)
    monkeypatch.setattr(write_behind, "ROOM_WAIT_S", 0.01)
    session_id = parts.running()
    for step in range(1, 4):
        queue.enqueue(session_id, InProgress(percentage=float(step)), (), None)
    assert percentage(parts, session_id) == 2.0
    assert queue.queued_count == 1


def test_the_batch_writer_writes_when_notified_and_again_while_work_is_left() -> None:
    rounds: list[int] = []
    done = threading.Event()

    def write() -> bool:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("a failed round is logged, the writer goes on")
        if len(rounds) == 3:
            done.set()
        return len(rounds) < 3

    writer = BatchWriter(write)
    try:
        writer.notify()
        eventually(lambda: rounds == [0], what="the first round")
        writer.notify()
        assert done.wait(30)
    finally:
        writer.stop()
    assert rounds == [0, 1, 2]
