"""KombuBus's ordering: out-of-order arrivals wait, gaps and lost tails come from the log."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from kombu import Connection

from celery_progress_mcp import (
    InProgress,
    ProgressConfig,
    ProgressEvent,
    ProgressEventType,
    ProgressTracker,
)
from celery_progress_mcp.bus.kombu import KombuBus, transport_has_fanout
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.testing import eventually

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _event(seq: int) -> ProgressEvent:
    return ProgressEvent(
        seq=seq,
        session_id="s",
        operation_id="op",
        event_type=ProgressEventType.PROGRESS_UPDATED,
        timestamp=NOW,
        data={"status": "in_progress", "percentage": float(seq)},
    )


class _Log:
    """The store's event log, as far as the bus sees it."""

    def __init__(self, seqs: list[int]) -> None:
        self.events = [_event(seq) for seq in seqs]

    def since(self, after: int) -> list[ProgressEvent]:
        return [event for event in self.events if event.seq > after][:2]

    def last(self) -> int:
        return self.events[-1].seq if self.events else 0


def _bus(log: _Log) -> tuple[KombuBus, list[int]]:
    bus = KombuBus(Connection("memory://"), backfill=log.since, latest_seq=log.last, consume=False)
    bus._next_seq = log.last() + 1
    delivered: list[int] = []
    bus.subscribe(lambda event: delivered.append(event.seq))
    return bus, delivered


def test_an_early_event_waits_for_the_one_before_it() -> None:
    bus, delivered = _bus(_Log([1, 2]))
    bus._offer(_event(4))
    assert delivered == []
    bus._offer(_event(3))
    assert delivered == [3, 4]


def test_a_gap_is_filled_from_the_log() -> None:
    log = _Log([1, 2])
    bus, delivered = _bus(log)
    log.events += [_event(3), _event(4), _event(5)]
    bus._offer(_event(5))  # 3 and 4 were lost by the broker
    bus._catch_up()
    assert delivered == [3, 4, 5]
    assert bus.backfilled >= 2


def test_a_lost_tail_is_found_in_the_log() -> None:
    log = _Log([1])
    bus, delivered = _bus(log)
    log.events += [_event(2), _event(3)]
    bus._catch_up()  # nothing came from the broker
    assert delivered == [2, 3]


def test_what_the_log_no_longer_has_is_skipped() -> None:
    log = _Log([1])
    bus, delivered = _bus(log)
    bus._offer(_event(5))  # 2..4 were purged from the log meanwhile
    bus._catch_up()
    assert delivered == [5]


def test_duplicates_are_dropped() -> None:
    bus, delivered = _bus(_Log([1]))
    for seq in (2, 2, 3, 2):
        bus._offer(_event(seq))
    assert delivered == [2, 3]


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
        eventually(lambda: table.exists() and str(process.pid) in table.read_text())
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
        eventually(lambda: str(os.getpid()) in table.read_text())
        assert str(process.pid) not in table.read_text()
    finally:
        bus.close()
    assert str(os.getpid()) not in table.read_text()  # a clean close unbinds too
