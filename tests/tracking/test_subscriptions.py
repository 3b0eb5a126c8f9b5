"""Subscriptions: bounded, non-blocking fan-out; replay from the log with ``since``;
filters; iteration; the async tracker's async iterator."""

from __future__ import annotations

import asyncio
import itertools
import threading

from celery_progress_mcp import (
    AsyncProgressTracker,
    InProgress,
    ProgressEvent,
    ProgressEventType,
    ProgressTracker,
)
from celery_progress_mcp.testing import eventually

from .api import run
from .conftest import TrackerFactory

E = ProgressEventType


#: Sessions the concurrent writer below makes at most (about 7 events each).
MAX_WRITER_ROUNDS = 1000


def produce(tracker: ProgressTracker, sessions: int = 1, updates: int = 3) -> list[str]:
    ids = []
    for _ in range(sessions):
        session_id = tracker.create_session("op")
        for step in range(1, updates + 1):
            tracker.update_progress(session_id, InProgress(percentage=step))
        tracker.complete_session(session_id)
        ids.append(session_id)
    return ids


def logged(tracker: ProgressTracker, since: int = 0) -> list[ProgressEvent]:
    events: list[ProgressEvent] = []
    while page := tracker.store.events_since(since):
        events.extend(page)
        since = page[-1].seq
    return events


def test_get_returns_none_when_the_timeout_passes(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()
    subscription = tracker.subscribe_to_events()
    assert subscription.get(timeout=0.05) is None
    assert subscription.get(timeout=0) is None
    tracker.create_session("op")
    event = subscription.get(timeout=0)
    assert event is not None
    assert event.event_type is E.SESSION_CREATED


def test_get_wakes_for_an_event_from_another_thread(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()
    subscription = tracker.subscribe_to_events()
    producer = threading.Thread(target=produce, args=(tracker,))
    producer.start()
    event = subscription.get(timeout=30)
    producer.join()
    assert event is not None
    assert event.event_type is E.SESSION_CREATED


def test_a_slow_subscriber_never_blocks_the_producer_and_counts_what_it_missed(
    make_tracker: TrackerFactory,
) -> None:
    tracker = make_tracker(update_interval_ms=0, subscriber_buffer_size=5)
    slow = tracker.subscribe_to_events()  # never read while producing
    fast = tracker.subscribe_to_events()
    fast_events: list[ProgressEvent] = []
    fast.add_waker(lambda: fast_events.extend(fast.drain()))

    produce(tracker, sessions=4, updates=10)  # returns: the full buffer never blocked it

    total = len(logged(tracker))
    assert len(fast_events) == total
    assert fast.missed == 0
    kept = slow.drain()
    assert len(kept) == 5
    assert slow.missed == total - 5
    # What it kept is the newest, in order; the gap is what it missed.
    assert [e.seq for e in kept] == [e.seq for e in fast_events[-5:]]


def test_since_replays_from_the_log_then_continues_live(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker(update_interval_ms=0)
    produce(tracker, sessions=2)
    history = logged(tracker)
    resume_after = history[len(history) // 2].seq

    subscription = tracker.subscribe_to_events(since=resume_after)
    produce(tracker, sessions=1)

    received = subscription.drain()
    expected = logged(tracker, since=resume_after)
    assert [e.seq for e in received] == [e.seq for e in expected]
    assert received == expected


def test_since_has_no_gap_or_duplicate_while_events_are_being_written(
    make_tracker: TrackerFactory,
) -> None:
    tracker = make_tracker(update_interval_ms=0)
    produce(tracker, sessions=2)
    stop = threading.Event()
    rounds: list[str] = []  # the sessions written so far

    def keep_writing() -> None:
        # Bounded, so the memory store's event ring (10,000 events) keeps
        # the whole log however fast this machine is.
        for _ in range(MAX_WRITER_ROUNDS):
            if stop.is_set():
                return
            rounds.extend(produce(tracker, sessions=1, updates=2))

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        # Subscribe while the writer is going, and let it write on after
        # (unless it has already finished its rounds).
        eventually(lambda: len(rounds) >= 2, what="the writer's first rounds")
        subscription = tracker.subscribe_to_events(since=1)
        joined_at = len(rounds)
        eventually(lambda: len(rounds) >= min(joined_at + 2, MAX_WRITER_ROUNDS), what="more rounds")
    finally:
        stop.set()
        writer.join()
    received = [e.seq for e in subscription.drain()]
    assert received == [e.seq for e in logged(tracker, since=1)]
    assert received == list(range(2, received[-1] + 1))


def test_filters_by_session_and_event_type(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker(update_interval_ms=0)
    first = tracker.create_session("a")
    by_session = tracker.subscribe_to_events(session_id=first)
    by_type = tracker.subscribe_to_events(event_types=[E.SESSION_COMPLETED, "SessionCancelled"])
    replayed = tracker.subscribe_to_events(
        session_id=first, event_types=["SessionCreated"], since=0
    )
    second = tracker.create_session("b")
    tracker.update_progress(first, InProgress(percentage=5))
    tracker.update_progress(second, InProgress(percentage=5))
    tracker.complete_session(first)
    tracker.cancel_session(second)

    assert {e.session_id for e in by_session.drain()} == {first}
    assert [(e.session_id, e.event_type) for e in by_type.drain()] == [
        (first, E.SESSION_COMPLETED),
        (second, E.SESSION_CANCELLED),
    ]
    assert [(e.session_id, e.event_type) for e in replayed.drain()] == [(first, E.SESSION_CREATED)]


def test_iteration_ends_when_the_subscription_is_closed(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker(update_interval_ms=0)
    subscription = tracker.subscribe_to_events()
    produce(tracker)
    subscription.close()
    events = list(subscription)
    assert events[0].event_type is E.SESSION_CREATED
    assert events[-1].event_type is E.SESSION_COMPLETED
    tracker.create_session("after close")
    assert subscription.get(timeout=0) is None


def test_closing_the_tracker_ends_its_subscriptions(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()
    subscription = tracker.subscribe_to_events()
    reader_done = threading.Event()
    received: list[ProgressEvent] = []

    def read() -> None:
        received.extend(subscription)  # blocks until closed
        reader_done.set()

    reader = threading.Thread(target=read)
    reader.start()
    tracker.create_session("op")
    tracker.close()
    reader.join(timeout=30)
    assert reader_done.is_set()
    assert [e.event_type for e in received] == [E.SESSION_CREATED]


def test_events_reach_subscribers_in_sequence_order_from_many_threads(
    make_tracker: TrackerFactory,
) -> None:
    tracker = make_tracker(update_interval_ms=0)
    subscription = tracker.subscribe_to_events()
    threads = [threading.Thread(target=produce, args=(tracker, 3, 5)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = [e.seq for e in subscription.drain()]
    assert seqs == list(range(1, len(logged(tracker)) + 1))
    assert all(a < b for a, b in itertools.pairwise(seqs))


def test_the_async_subscription_is_an_async_iterator(make_tracker: TrackerFactory) -> None:
    async def scenario() -> None:
        tracker = AsyncProgressTracker(tracker=make_tracker(update_interval_ms=0))
        subscription = tracker.subscribe_to_events()
        assert await subscription.get(timeout=0.01) is None

        # Written from another thread: the iterator must be woken, not polled.
        writer = threading.Thread(target=produce, args=(tracker.sync,))
        writer.start()
        received = []
        async for event in subscription:
            received.append(event)
            if event.event_type is E.SESSION_COMPLETED:
                break
        await asyncio.to_thread(writer.join)
        assert received[0].event_type is E.SESSION_CREATED
        assert [e.seq for e in received] == list(range(1, len(received) + 1))

        session_id = await tracker.create_session("async")
        awaited = await subscription.get(timeout=30)
        assert awaited is not None
        assert awaited.session_id == session_id
        subscription.close()
        assert [e async for e in subscription] == []

    run(scenario())


def test_the_async_subscription_replays_with_since(make_tracker: TrackerFactory) -> None:
    async def scenario() -> None:
        tracker = AsyncProgressTracker(tracker=make_tracker(update_interval_ms=0))
        session_id = await tracker.create_session("op")
        await tracker.update_progress(session_id, InProgress(percentage=5))
        async with tracker.subscribe_to_events(since=0, session_id=session_id) as subscription:
            await tracker.complete_session(session_id)
            kinds = []
            async for event in subscription:
                kinds.append(event.event_type)
                if event.event_type is E.SESSION_COMPLETED:
                    break
        assert kinds[0] is E.SESSION_CREATED
        assert E.PROGRESS_UPDATED in kinds

    run(scenario())
