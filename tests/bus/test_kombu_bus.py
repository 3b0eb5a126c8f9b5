"""KombuBus on real brokers: what one bus publishes another receives, in order and
with no gap; what the broker loses comes from the store's log; transports without
fanout are polled."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
from celery_progress_mcp.bus.kombu import KombuBus, transport_has_fanout
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.testing import eventually

from .conftest import Broker, filesystem_broker
from .events import EventLog
from .events import progress_event as _event

#: How often a quiet subscriber looks for a lost tail in the log.
POLL_S = 1.0
#: Long enough that no lost tail is looked for in the log while a test runs:
#: what the subscriber gets came through the broker, or filled a gap. (Closing
#: the subscriber then waits for its consumer's 5 s join timeout.)
NO_TAIL_POLL_S = 120.0


def _bus(broker: Broker, log: EventLog, **options: Any) -> KombuBus:
    return KombuBus(
        broker.connection(),
        backfill=log.since,
        latest_seq=log.last,
        exchange=broker.exchange,
        **options,
    )


class _Pair:
    """A publish-only bus and a subscribing bus on one broker, as two processes would have."""

    def __init__(self, broker: Broker, log: EventLog, poll_interval_s: float) -> None:
        self.publisher = _bus(broker, log, consume=False)
        self.subscriber = _bus(broker, log, poll_interval_s=poll_interval_s)
        self.received: list[int] = []
        self.subscriber.subscribe(lambda event: self.received.append(event.seq))

    def connect(self) -> None:
        """Publish a probe the log lacks until it arrives: the subscriber's queue is bound."""
        probe = _event(1)

        def arrived() -> list[int]:
            self.publisher.publish([probe])
            self.publisher.wait_published()
            return self.received

        eventually(arrived, what="the subscriber's queue to be bound")
        assert self.received == [1]

    def close(self) -> None:
        self.publisher.close()
        self.subscriber.close()


@contextmanager
def connected(broker: Broker, poll_interval_s: float = POLL_S) -> Iterator[tuple[_Pair, EventLog]]:
    """Two buses, the subscriber's queue bound; the log holds the probe (seq 1)."""
    log = EventLog()
    pair = _Pair(broker, log, poll_interval_s)
    try:
        pair.connect()
        log.append([1])
        yield pair, log
    finally:
        pair.close()


@pytest.fixture
def pair(broker: Broker) -> Iterator[tuple[_Pair, EventLog]]:
    with connected(broker) as made:
        yield made


def test_a_subscriber_gets_what_another_bus_publishes_in_order(
    pair: tuple[_Pair, EventLog],
) -> None:
    buses, log = pair
    buses.publisher.publish(log.append(range(2, 102)))
    eventually(lambda: buses.received == list(range(1, 102)), what="every event, in order")


def test_what_the_broker_lost_comes_from_the_log(pair: tuple[_Pair, EventLog]) -> None:
    buses, log = pair
    events = log.append(range(2, 11))
    buses.publisher.publish([event for event in events if event.seq in (2, 3, 7, 10)])
    eventually(lambda: buses.received == list(range(1, 11)), what="the gaps filled")
    assert buses.subscriber.backfilled >= 5


def test_closing_sends_what_is_queued_first(broker: Broker) -> None:
    with connected(broker, poll_interval_s=NO_TAIL_POLL_S) as (buses, log):
        buses.publisher.publish(log.append(range(2, 502)))
        buses.publisher.close()
        eventually(lambda: buses.received == list(range(1, 502)), what="every queued event")


def test_a_publish_only_bus_consumes_once_asked(tmp_path: Path) -> None:
    bus = _bus(filesystem_broker(tmp_path), EventLog(), consume=False)
    try:
        bus.subscribe(lambda event: None)
        assert not bus.consuming
        bus.start_consuming()
        bus.start_consuming()
        assert bus.consuming
    finally:
        bus.close()
    bus.start_consuming()  # closed: nothing starts again
    bus.publish([_event(1)])
    assert bus.wait_published(timeout_s=0.0)


def test_without_fanout_subscribers_poll_the_log(tmp_path: Path) -> None:
    """An ``sqla+`` broker has no fanout: a subscriber still gets every event, from the log."""
    url = f"sqlite:///{tmp_path / 'progress.db'}"

    def tracker() -> ProgressTracker:
        store = SqlStore(url)
        bus = KombuBus(
            Connection(f"sqla+sqlite:///{tmp_path / 'broker.db'}"),
            backfill=store.events_since,
            latest_seq=store.last_seq,
            poll_interval_s=0.05,
        )
        return ProgressTracker(ProgressConfig(update_interval_ms=0), store=store, bus=bus)

    with tracker() as worker, tracker() as monitor:
        subscription = monitor.subscribe_to_events()
        session_id = worker.create_session("job")
        for percentage in (10.0, 20.0, 30.0):
            worker.update_progress(session_id, InProgress(percentage=percentage))
        worker.complete_session(session_id)
        received = [subscription.get(timeout=10) for _ in range(6)]
        kinds = [event.event_type for event in received if event is not None]
        assert kinds[0] == "SessionCreated"
        assert kinds[-1] == "SessionCompleted"
        seqs = [event.seq for event in received if event is not None]
        assert seqs == list(range(seqs[0], seqs[0] + 6))
    for closing in (worker, monitor):
        closing.bus.close()
        closing.store.close()


def test_which_transports_fan_out_across_processes() -> None:
    assert transport_has_fanout(Connection("redis://localhost"))
    assert transport_has_fanout(Connection("amqp://localhost"))
    assert transport_has_fanout(Connection("filesystem://"))
    assert not transport_has_fanout(Connection("sqla+sqlite:///x.db"))
    assert not transport_has_fanout(Connection("memory://"))


SUBSCRIBER = """
import sys, time
from kombu import Connection
from celery_progress_mcp.bus.kombu import KombuBus
folder = sys.argv[1]
control = folder + "/control"
options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": control}
bus = KombuBus(Connection("filesystem://", transport_options=options),
               backfill=lambda seq: [], latest_seq=lambda: 0, exchange="cpm.prune")
bus.subscribe(lambda event: None)
while True:
    time.sleep(0.1)
"""


def test_a_killed_filesystem_subscriber_is_unbound_by_the_next_one(tmp_path: Path) -> None:
    (tmp_path / "control").mkdir()
    table = tmp_path / "control" / "cpm.prune.exchange"
    process = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(tmp_path)])
    try:
        eventually(lambda: table.exists() and str(process.pid) in table.read_text(), timeout_s=30)
    finally:
        process.kill()
        process.wait(10)
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
    }
    bus = KombuBus(
        Connection("filesystem://", transport_options=options),
        backfill=lambda seq: [],
        latest_seq=lambda: 0,
        exchange="cpm.prune",
    )
    try:
        bus.subscribe(lambda event: None)
        eventually(lambda: str(os.getpid()) in table.read_text(), timeout_s=30)
        assert str(process.pid) not in table.read_text()
    finally:
        bus.close()
    assert str(os.getpid()) not in table.read_text()  # a clean close unbinds too
