"""A store outage never fails the caller: writes are buffered and replayed in order.

The store here is a real ``MemoryStore`` behind a switch that makes every
call raise ``StoreUnavailable`` while it is off, as ``SqlStore`` does when
its database cannot be reached (``test_postgres_outage.py`` stops a real
PostgreSQL instead).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from celery_progress_mcp import (
    InProgress,
    ProgressConfig,
    ProgressEvent,
    ProgressSession,
    ProgressTracker,
    SubOperation,
    SubOperationUpdate,
)
from celery_progress_mcp.core.engine import Change
from celery_progress_mcp.core.errors import StoreUnavailable
from celery_progress_mcp.store.base import Mutation
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.testing import FakeClock


class SwitchableStore(MemoryStore):
    """A MemoryStore whose every call fails with StoreUnavailable while ``down``."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the test switched the store off")

    def create(self, change: Change, *, max_active: int, history_limit: int) -> list[ProgressEvent]:
        self._check()
        return super().create(change, max_active=max_active, history_limit=history_limit)

    def apply(
        self, session_id: str, mutation: Mutation, *, history_limit: int
    ) -> tuple[ProgressSession, list[ProgressEvent]]:
        self._check()
        return super().apply(session_id, mutation, history_limit=history_limit)

    def get(self, session_id: str, *, with_history: bool = True) -> ProgressSession | None:
        self._check()
        return super().get(session_id, with_history=with_history)

    def last_seq(self) -> int:
        self._check()
        return super().last_seq()

    def health(self) -> dict[str, Any]:
        return {"status": "unavailable" if self.down else "ok"}


@pytest.fixture
def store() -> SwitchableStore:
    return SwitchableStore()


@pytest.fixture
def tracker(store: SwitchableStore) -> Iterator[ProgressTracker]:
    tracker = ProgressTracker(
        ProgressConfig(update_interval_ms=0, granularity_level="Verbose"),
        store=store,
        clock=FakeClock(),
    )
    yield tracker
    store.down = False
    tracker.close()


def test_writes_during_an_outage_return_and_are_replayed_in_order(
    store: SwitchableStore, tracker: ProgressTracker
) -> None:
    before = tracker.create_session("op", session_id="before")
    store.down = True
    tracker.update_progress(before, InProgress(percentage=10))
    during = tracker.create_session("op", session_id="during")
    tracker.add_sub_operations(during, [SubOperation(id="a", name="A")])
    tracker.start_sub_operation(during, "a")
    tracker.update_progress(before, InProgress(percentage=20), metadata={"k": 1})
    tracker.complete_sub_operation(during, "a")
    tracker.complete_session(during, "done")
    tracker.complete_session(before)
    health = tracker.health()
    assert health["status"] == "degraded"
    assert health["outage"]["engaged"]
    assert health["outage"]["buffered"] == 8

    store.down = False
    tracker.flush()

    assert tracker.health()["status"] == "ok"
    first = tracker.get_session(before)
    assert first.status == "completed"
    assert first.metadata == {"k": 1}
    assert [snap.state.percentage for snap in first.history[1:3]] == [10, 20]  # type: ignore[union-attr]
    second = tracker.get_session(during)
    assert second.status == "completed"
    assert second.sub_operations[0].state == "completed"
    replayed = [(e.session_id, e.event_type.value) for e in store.events_since(1)]
    assert replayed == [
        ("before", "StateChanged"),
        ("before", "ProgressUpdated"),
        ("before", "ProgressUpdated"),
        ("before", "SessionCompleted"),
        ("during", "SessionCreated"),
        ("during", "SubOperationAdded"),
        ("during", "SubOperationStarted"),
        ("during", "StateChanged"),
        ("during", "SubOperationCompleted"),
        ("during", "SessionCompleted"),
    ]


def test_a_session_keeps_its_order_while_its_backlog_replays(
    store: SwitchableStore, tracker: ProgressTracker
) -> None:
    session_id = tracker.create_session("op")
    store.down = True
    tracker.update_progress(session_id, InProgress(percentage=30))
    store.down = False
    # The store is back but the backlog is not written yet: this update must
    # queue behind it, not overtake it.
    assert tracker.health()["outage"]["buffered"] == 1
    tracker.update_progress(session_id, InProgress(percentage=40))
    assert tracker.health()["outage"]["buffered"] == 2
    tracker.flush()
    history = tracker.get_session(session_id).history
    assert [snap.state.percentage for snap in history[1:]] == [30, 40]  # type: ignore[union-attr]


def test_a_full_buffer_merges_plain_updates_and_keeps_every_transition(
    store: SwitchableStore, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = ProgressTracker(
        ProgressConfig(update_interval_ms=0, granularity_level="Verbose"),
        store=store,
        clock=FakeClock(),
    )
    tracker._outage._capacity = 10
    session_id = tracker.create_session("op")
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    store.down = True
    with caplog.at_level(logging.WARNING):
        for percentage in range(1, 50):
            tracker.update_progress(
                session_id,
                InProgress(percentage=percentage),
                [SubOperationUpdate(id="a", percentage=percentage, metadata={f"k{percentage}": 1})],
                metadata={f"m{percentage % 3}": percentage},
            )
        tracker.start_sub_operation(session_id, "a")
        tracker.update_progress(session_id, InProgress(percentage=60))
        tracker.complete_sub_operation(session_id, "a")
        tracker.complete_session(session_id, "done")
    report = tracker.health()["outage"]
    assert report["buffered"] <= 10
    assert report["merged"] > 0
    assert report["dropped"] == 0
    assert "merged" in caplog.text

    store.down = False
    tracker.flush()
    session = tracker.get_session(session_id)
    assert session.status == "completed"
    # The latest update of each merged run won, with the merged metadata of the run.
    assert session.metadata == {"m0": 48, "m1": 49, "m2": 47}
    sub = session.sub_operations[0]
    assert sub.state == "completed"
    assert all(f"k{n}" in sub.metadata for n in range(1, 50))
    tracker.close()


def test_transitions_beyond_the_bound_are_dropped_and_counted(
    store: SwitchableStore, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store, clock=FakeClock())
    tracker._outage._capacity = 3
    store.down = True
    with caplog.at_level(logging.ERROR):
        for index in range(5):
            tracker.create_session("op", session_id=f"s{index}")
    assert tracker.health()["outage"]["dropped"] == 2
    assert "dropped" in caplog.text
    store.down = False
    tracker.flush()
    assert {s.id for s in tracker.list_sessions()} == {"s0", "s1", "s2"}
    tracker.close()


def test_a_write_refused_on_replay_is_logged_not_raised(
    store: SwitchableStore, tracker: ProgressTracker, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = tracker.create_session("op")
    store.down = True
    tracker.complete_session(session_id)
    tracker.complete_session(session_id)  # refused once the first is written
    store.down = False
    with caplog.at_level(logging.WARNING):
        tracker.flush()
    assert tracker.get_session(session_id).status == "completed"
    assert tracker.health()["outage"]["refused_on_replay"] == 1
    assert "refused on replay" in caplog.text


def test_closing_during_an_outage_logs_what_is_lost(
    store: SwitchableStore, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store, clock=FakeClock())
    session_id = tracker.create_session("op")
    store.down = True
    tracker.update_progress(session_id, InProgress(percentage=5))
    with caplog.at_level(logging.ERROR):
        tracker._outage.close(deadline_s=0.0)
    assert "1 buffered writes of 1 sessions lost" in caplog.text


def test_a_coalesced_update_due_during_an_outage_is_buffered(store: SwitchableStore) -> None:
    clock = FakeClock()
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=500), store=store, clock=clock)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    tracker.update_progress(session_id, InProgress(percentage=20))  # pending in the window
    store.down = True
    clock.advance(1.0)  # the window ends: the flusher writes it out, into the buffer
    assert tracker.health()["outage"]["buffered"] == 1
    store.down = False
    tracker.flush()
    assert tracker.get_session(session_id).state.percentage == 20  # type: ignore[union-attr]
    tracker.close()
