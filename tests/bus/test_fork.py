"""A bus used by a process that then forks (a Celery prefork worker) stays usable in
both: the child, once ``after_fork`` has run, publishes and consumes on the same broker
while the parent goes on, even though the parent's threads were busy at the fork."""

from __future__ import annotations

import functools
import threading
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

from celery_progress_mcp import InProgress, ProgressConfig, ProgressEvent, ProgressEventType
from celery_progress_mcp.bus import LocalBus
from celery_progress_mcp.bus.kombu import KombuBus
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.testing import eventually
from tests.forking import FORK, Forked

from .conftest import Broker
from .events import NOW
from .events import progress_event as _event

ENGINE = Engine(ProgressConfig(granularity_level="Verbose"))
HISTORY = 10
#: Bound on how long a delivery of the parent stays stalled, and on the waits for the child.
HOLD_S = 60.0


def record(store: SqlStore, session_id: str) -> list[ProgressEvent]:
    """Create, move and complete a session; return its logged events, to publish."""
    change = ENGINE.create(session_id=session_id, operation_id="op", now=NOW)
    events = store.create(change, max_active=100, history_limit=HISTORY)
    for percentage in (10.0, 20.0):
        state = InProgress(percentage=percentage)
        mutation = functools.partial(ENGINE.update, state=state, now=NOW)
        events += store.apply(session_id, mutation, history_limit=HISTORY)[1]
    done = functools.partial(ENGINE.complete, result_summary="ok", now=NOW)
    events += store.apply(session_id, done, history_limit=HISTORY)[1]
    return events


class Stream:
    """The events one subscriber received."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def append(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def finished(self, *session_ids: str) -> bool:
        """Whether the completion of each of the sessions arrived."""
        completed = {
            event.session_id
            for event in list(self.events)
            if event.event_type == ProgressEventType.SESSION_COMPLETED
        }
        return completed >= set(session_ids)

    def assert_in_order_with_no_gap(self) -> None:
        seqs = [event.seq for event in self.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def child_works(store: SqlStore, bus: KombuBus, consuming: ProcessEvent) -> None:
    """In the forked child: renew the store and the bus, subscribe, publish, receive."""
    store.after_fork()
    bus.after_fork()
    stream = Stream()
    bus.subscribe(stream.append)
    assert bus.consuming
    consuming.set()
    bus.publish(record(store, "child"))
    eventually(
        lambda: stream.finished("child", "parent-after"),
        timeout_s=HOLD_S,
        what="the child's and the parent's events to reach the child",
    )
    stream.assert_in_order_with_no_gap()
    bus.close()
    store.close()


def test_a_forked_child_publishes_and_consumes_while_the_parent_goes_on(
    broker: Broker, tmp_path: Path
) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'log.db'}")
    bus = KombuBus(
        broker.connection(),
        backfill=store.events_since,
        latest_seq=store.last_seq,
        exchange=broker.exchange,
    )
    stream = Stream()
    inside, release = threading.Event(), threading.Event()

    def stall_on_the_blocker(event: ProgressEvent) -> None:
        if event.session_id == "blocker" and event.event_type == ProgressEventType.SESSION_CREATED:
            inside.set()
            release.wait(HOLD_S)

    bus.subscribe(stream.append)
    bus.subscribe(stall_on_the_blocker)
    child_consuming = FORK.Event()
    try:
        bus.publish(record(store, "before"))
        eventually(lambda: stream.finished("before"), what="the parent's threads to run")
        bus.publish(record(store, "blocker"))
        assert inside.wait(HOLD_S)  # the consumer thread is in a delivery, holding its lock
        child = Forked(child_works, store, bus, child_consuming)
        release.set()
        assert child_consuming.wait(HOLD_S)
        bus.publish(record(store, "parent-after"))
        eventually(
            lambda: stream.finished("blocker", "child", "parent-after"),
            timeout_s=HOLD_S,
            what="the child's and the parent's events to reach the parent",
        )
        child.succeeded()
        stream.assert_in_order_with_no_gap()
        assert [event.seq for event in stream.events] == [
            event.seq for event in store.events_since(0, limit=1000)
        ]
    finally:
        release.set()
        bus.close()
        store.close()


def _local_child(bus: LocalBus, parents: list[int]) -> None:
    bus.after_fork()
    mine: list[int] = []
    bus.subscribe(lambda event: mine.append(event.seq))
    bus.publish([_event(3)])
    assert mine == [3]
    assert parents == [1, 3]  # the parent's subscriber came along, as the child's copy


def test_a_forked_child_uses_its_copy_of_a_local_bus() -> None:
    bus = LocalBus()
    received: list[int] = []
    bus.subscribe(lambda event: received.append(event.seq))
    bus.publish([_event(1)])
    child = Forked(_local_child, bus, received)
    bus.publish([_event(2)])
    child.succeeded()
    assert received == [1, 2]
