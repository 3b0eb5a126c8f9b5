"""The reorder buffer: out-of-order arrivals wait, gaps and lost tails come from the log."""

from __future__ import annotations

import pytest

from celery_progress_mcp import ProgressEvent
from celery_progress_mcp.bus.reorder import ReorderBuffer

from .events import EventLog
from .events import progress_event as _event


def _buffer(log: EventLog) -> tuple[ReorderBuffer, list[int]]:
    delivered: list[int] = []
    buffer = ReorderBuffer(lambda event: delivered.append(event.seq), log.since)
    buffer.start_at(log.last() + 1)
    return buffer, delivered


def test_an_early_event_waits_for_the_one_before_it() -> None:
    buffer, delivered = _buffer(EventLog([1, 2], page_size=2))
    buffer.offer(_event(4), now_s=0.0)
    assert delivered == []
    buffer.offer(_event(3), now_s=0.0)
    assert delivered == [3, 4]


def test_a_gap_is_filled_from_the_log() -> None:
    log = EventLog([1, 2], page_size=2)
    buffer, delivered = _buffer(log)
    log.append([3, 4, 5])
    buffer.offer(_event(5), now_s=0.0)  # 3 and 4 were lost by the broker
    buffer.catch_up()
    assert delivered == [3, 4, 5]
    assert buffer.backfilled >= 2


def test_a_lost_tail_is_found_in_the_log() -> None:
    log = EventLog([1], page_size=2)
    buffer, delivered = _buffer(log)
    log.append([2, 3])
    buffer.catch_up()  # nothing came from the broker
    assert delivered == [2, 3]


def test_what_the_log_no_longer_has_is_skipped() -> None:
    log = EventLog([1], page_size=2)
    buffer, delivered = _buffer(log)
    buffer.offer(_event(5), now_s=0.0)  # 2..4 were purged from the log meanwhile
    buffer.catch_up()
    assert delivered == [5]


def test_duplicates_are_dropped() -> None:
    buffer, delivered = _buffer(EventLog([1], page_size=2))
    for seq in (2, 2, 3, 2):
        buffer.offer(_event(seq), now_s=0.0)
    assert delivered == [2, 3]


def test_without_a_known_start_the_first_event_offered_sets_it() -> None:
    buffer, delivered = _buffer(EventLog([], page_size=2))
    buffer.start_at(None)  # the log could not be read when consuming started
    buffer.offer(_event(7), now_s=0.0)
    buffer.offer(_event(6), now_s=0.0)
    buffer.offer(_event(8), now_s=0.0)
    assert delivered == [7, 8]


def test_a_gap_is_timed_from_the_first_early_arrival() -> None:
    buffer, _ = _buffer(EventLog([1], page_size=2))
    assert not buffer.gap_outlived(now_s=100.0, grace_s=0.05)
    buffer.offer(_event(3), now_s=10.0)
    buffer.offer(_event(4), now_s=10.02)  # the gap is still the one opened at 10.0
    assert not buffer.gap_outlived(now_s=10.02, grace_s=0.05)
    assert buffer.gap_outlived(now_s=10.1, grace_s=0.05)
    buffer.offer(_event(2), now_s=10.06)
    assert buffer.gap_since_s is None  # closed: 2, 3 and 4 went out


def test_a_message_lost_unread_opens_a_gap_that_a_catch_up_closes() -> None:
    log = EventLog([1], page_size=2)
    buffer, delivered = _buffer(log)
    buffer.lost_one(now_s=5.0)
    buffer.lost_one(now_s=6.0)  # the gap opened at the first loss
    assert buffer.gap_outlived(now_s=5.1, grace_s=0.05)
    log.append([2])
    buffer.catch_up()
    assert delivered == [2]
    assert buffer.gap_since_s is None


def test_a_failing_log_leaves_the_gap_open() -> None:
    delivered: list[int] = []

    def unreadable(after: int) -> list[ProgressEvent]:
        raise ConnectionError("the store is down")

    buffer = ReorderBuffer(lambda event: delivered.append(event.seq), unreadable)
    buffer.start_at(2)
    buffer.offer(_event(4), now_s=1.0)
    with pytest.raises(ConnectionError, match="the store is down"):
        buffer.catch_up()
    assert delivered == []
    assert buffer.gap_since_s == 1.0
    buffer.offer(_event(2), now_s=2.0)
    buffer.offer(_event(3), now_s=2.0)
    assert delivered == [2, 3, 4]
