"""MemoryStore: the reference semantics of the Store port, in process."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest

from celery_progress_mcp import (
    CapacityExceeded,
    InProgress,
    InvalidProgress,
    InvalidTransition,
    ProgressConfig,
    ProgressSession,
    SessionNotFound,
    SessionQuery,
)
from celery_progress_mcp.core.engine import Change, Engine
from celery_progress_mcp.store.base import Mutation
from celery_progress_mcp.store.memory import MemoryStore

NOW = datetime(2025, 6, 18, tzinfo=UTC)
ENGINE = Engine(ProgressConfig(granularity_level="Verbose"))
HISTORY = 10


def create(store: MemoryStore, session_id: str, *, max_active: int = 100) -> None:
    change = ENGINE.create(session_id=session_id, operation_id="op", now=NOW)
    store.create(change, max_active=max_active, history_limit=HISTORY)


def update(percentage: float, at: datetime = NOW) -> Mutation:
    return functools.partial(ENGINE.update, state=InProgress(percentage=percentage), now=at)


def test_create_then_get() -> None:
    store = MemoryStore()
    create(store, "s1")
    session = store.get("s1")
    assert session is not None
    assert session.status == "initializing"
    assert [snap.index for snap in session.history] == [0]
    assert store.get("s1", with_history=False).history == ()  # type: ignore[union-attr]
    assert store.get("missing") is None


def test_a_duplicate_id_is_refused() -> None:
    store = MemoryStore()
    create(store, "s1")
    with pytest.raises(InvalidProgress, match="already exists"):
        create(store, "s1")
    assert store.stats().total_created == 1


def test_capacity_counts_active_sessions_only() -> None:
    store = MemoryStore()
    create(store, "a", max_active=1)
    with pytest.raises(CapacityExceeded):
        create(store, "b", max_active=1)
    store.apply(
        "a", functools.partial(ENGINE.complete, result_summary=None, now=NOW), history_limit=HISTORY
    )
    create(store, "b", max_active=1)


def test_a_refused_mutation_writes_nothing() -> None:
    store = MemoryStore()
    create(store, "s1")
    store.apply("s1", update(10), history_limit=HISTORY)
    before = (store.get("s1"), store.stats(), store.last_seq())

    def refuse(session: ProgressSession) -> Change:
        raise InvalidTransition("no")

    with pytest.raises(InvalidTransition):
        store.apply("s1", refuse, history_limit=HISTORY)
    with pytest.raises(SessionNotFound):
        store.apply("missing", update(20), history_limit=HISTORY)
    assert (store.get("s1"), store.stats(), store.last_seq()) == before


def test_sequence_numbers_increase_across_sessions() -> None:
    store = MemoryStore()
    create(store, "a")
    create(store, "b")
    for percentage in range(1, 6):
        store.apply("a", update(percentage), history_limit=HISTORY)
        store.apply("b", update(percentage), history_limit=HISTORY)
    seqs = [event.seq for event in store.events_since(0)]
    assert seqs == list(range(1, store.last_seq() + 1))


def test_events_since_pages_and_filters() -> None:
    store = MemoryStore()
    create(store, "a")
    create(store, "b")
    for percentage in range(1, 4):
        store.apply("a", update(percentage), history_limit=HISTORY)
    page = store.events_since(0, limit=2)
    assert [e.seq for e in page] == [1, 2]
    rest = store.events_since(page[-1].seq)
    assert rest[0].seq == 3
    assert {e.session_id for e in store.events_since(0, session_id="b")} == {"b"}


def test_the_event_log_is_bounded() -> None:
    store = MemoryStore(max_logged_events=10)
    create(store, "a")
    for percentage in range(1, 60):
        store.apply("a", update(percentage / 2), history_limit=HISTORY)
    logged = store.events_since(0, limit=1000)
    assert len(logged) <= 20
    assert logged[-1].seq == store.last_seq()


def test_history_is_thinned_as_it_grows() -> None:
    store = MemoryStore()
    create(store, "a")
    for percentage in range(1, 100):
        store.apply("a", update(percentage), history_limit=HISTORY)
    history = store.get("a").history  # type: ignore[union-attr]
    assert len(history) <= HISTORY
    assert (history[0].index, history[-1].index) == (0, 99)


def test_stale_and_purge() -> None:
    store = MemoryStore()
    create(store, "old")
    create(store, "done")
    later = NOW + timedelta(hours=1)
    store.apply(
        "done",
        functools.partial(ENGINE.complete, result_summary=None, now=NOW),
        history_limit=HISTORY,
    )
    assert store.stale_sessions(later) == ["old"]
    events = store.purge_finished(later, ENGINE.expired_event)
    assert [(e.session_id, e.event_type.value) for e in events] == [("done", "SessionExpired")]
    assert store.get("done") is None
    stats = store.stats()
    assert (stats.total_completed, stats.total_created, stats.sessions_by_state) == (
        1,
        2,
        {"initializing": 1},
    )
    assert store.purge_events(later + timedelta(seconds=1)) == store.last_seq()
    assert store.events_since(0) == []


def test_list_and_count() -> None:
    store = MemoryStore()
    for index in range(4):
        change = ENGINE.create(
            session_id=f"s{index}", operation_id="op", now=NOW + timedelta(seconds=index)
        )
        store.create(change, max_active=100, history_limit=HISTORY)
    query = SessionQuery(created_after=NOW + timedelta(seconds=1), limit=2)
    assert [s.id for s in store.list_sessions(query)] == ["s3", "s2"]
    assert store.count_sessions(query) == 3
