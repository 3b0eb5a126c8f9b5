"""The Store port's contract, on every store: memory, SQLite, PostgreSQL, MariaDB.

``MemoryStore`` is the reference; each test here states a rule of the port
and runs against every store through the ``make_store`` fixture.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)
from celery_progress_mcp.core.engine import Change, Engine
from celery_progress_mcp.store.base import Creation, Mutation, Store, Write

NOW = datetime(2025, 6, 18, tzinfo=UTC)
ENGINE = Engine(ProgressConfig(granularity_level="Verbose"))
HISTORY = 10

MakeStore = Callable[..., Store]


def create(
    store: Store,
    session_id: str,
    *,
    max_active: int = 100,
    at: datetime = NOW,
    operation_id: str = "op",
    parent_id: str | None = None,
) -> None:
    change = ENGINE.create(
        session_id=session_id,
        operation_id=operation_id,
        now=at,
        parent_id=parent_id,
        metadata={"k": "v"},
    )
    store.create(change, max_active=max_active, history_limit=HISTORY)


def update(percentage: float, at: datetime = NOW, **extra: Any) -> Mutation:
    return functools.partial(
        ENGINE.update, state=InProgress(percentage=percentage), now=at, **extra
    )


def complete(at: datetime = NOW) -> Mutation:
    return functools.partial(ENGINE.complete, result_summary="ok", now=at)


def test_create_then_get(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "s1")
    session = store.get("s1")
    assert session is not None
    assert (session.status, session.metadata, session.created_at) == (
        "initializing",
        {"k": "v"},
        NOW,
    )
    assert [snap.index for snap in session.history] == [0]
    assert store.get("s1", with_history=False).history == ()  # type: ignore[union-attr]
    assert store.get("missing") is None


def test_what_apply_returns_is_what_get_reads(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "s1")
    subs = (SubOperation(id="a", name="A", weight=2.5), SubOperation(id="b", name="B"))
    store.apply(
        "s1",
        functools.partial(ENGINE.add_sub_operations, sub_operations=subs, now=NOW),
        history_limit=HISTORY,
    )
    later = NOW + timedelta(seconds=1, microseconds=123)
    change = SubOperationUpdate(
        id="a", state=SubOperationState.ACTIVE, percentage=12.5, metadata={"x": [1, 2]}
    )
    returned, events = store.apply(
        "s1",
        update(33.3, later, sub_operation_updates=(change,), metadata={"m": 1}),
        history_limit=HISTORY,
    )
    read = store.get("s1", with_history=False)
    assert read is not None
    assert read == returned
    assert [sub.id for sub in read.sub_operations] == ["a", "b"]
    assert read.sub_operations[0].started_at == later
    assert store.events_since(events[0].seq - 1, limit=len(events)) == events


def test_a_duplicate_id_is_refused(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "s1")
    with pytest.raises(InvalidProgress, match="already exists"):
        create(store, "s1")
    assert store.stats().total_created == 1


def test_ids_differ_by_case_and_trailing_space(make_store: MakeStore) -> None:
    store = make_store()
    for session_id in ("abc", "ABC", "abc "):
        create(store, session_id)
    assert {s.id for s in store.list_sessions(SessionQuery())} == {"abc", "ABC", "abc "}


def test_capacity_counts_active_sessions_only(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "a", max_active=1)
    with pytest.raises(CapacityExceeded):
        create(store, "b", max_active=1)
    store.apply("a", complete(), history_limit=HISTORY)
    create(store, "b", max_active=1)
    assert store.stats().total_created == 2


def test_a_refused_mutation_writes_nothing(make_store: MakeStore) -> None:
    store = make_store()
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


def test_sequence_numbers_increase_across_sessions(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "a")
    create(store, "b")
    for percentage in range(1, 6):
        store.apply("a", update(percentage), history_limit=HISTORY)
        store.apply("b", update(percentage), history_limit=HISTORY)
    seqs = [event.seq for event in store.events_since(0)]
    assert seqs == list(range(1, store.last_seq() + 1))


def test_events_since_pages_and_filters(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "a")
    create(store, "b")
    for percentage in range(1, 4):
        store.apply("a", update(percentage), history_limit=HISTORY)
    page = store.events_since(0, limit=2)
    assert [e.seq for e in page] == [1, 2]
    rest = store.events_since(page[-1].seq)
    assert rest[0].seq == 3
    assert {e.session_id for e in store.events_since(0, session_id="b")} == {"b"}
    assert all(e.timestamp.tzinfo is not None for e in rest)


def test_history_is_thinned_like_the_memory_store(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "a")
    for percentage in range(1, 100):
        store.apply("a", update(percentage), history_limit=HISTORY)
    history = store.get("a").history  # type: ignore[union-attr]
    assert len(history) <= HISTORY
    assert (history[0].index, history[-1].index) == (0, 99)
    assert [snap.index for snap in history] == [0, 16, 32, 48, 64, 80, 96, 99]
    assert history[-1].state == InProgress(percentage=99)


def test_stale_and_purge(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "old")
    create(store, "done")
    later = NOW + timedelta(hours=1)
    store.apply("done", complete(), history_limit=HISTORY)
    assert store.stale_sessions(later) == ["old"]
    assert store.stale_sessions(NOW) == []
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


def test_purging_goes_in_bounded_batches(make_store: MakeStore) -> None:
    store = make_store()
    for index in range(7):
        create(store, f"s{index}")
        store.apply(f"s{index}", complete(), history_limit=HISTORY)
    later = NOW + timedelta(hours=1)
    assert len(store.purge_finished(later, ENGINE.expired_event, limit=3)) == 3
    assert store.count_sessions(SessionQuery()) == 4
    logged = store.last_seq()
    assert store.purge_events(later, limit=5) == 5
    assert store.events_since(0)[0].seq == 6
    assert store.purge_events(later) == logged - 5


def test_stats_are_lifetime_totals(make_store: MakeStore) -> None:
    store = make_store()
    for index, minutes in enumerate((1, 3)):
        create(store, f"c{index}")
        store.apply(f"c{index}", complete(NOW + timedelta(minutes=minutes)), history_limit=HISTORY)
    create(store, "f")
    store.apply(
        "f",
        functools.partial(ENGINE.fail, error_message="x", error_code=None, now=NOW),
        history_limit=HISTORY,
    )
    create(store, "x")
    store.apply("x", functools.partial(ENGINE.cancel, reason="r", now=NOW), history_limit=HISTORY)
    create(store, "p")
    store.apply("p", update(5), history_limit=HISTORY)
    store.purge_finished(NOW + timedelta(hours=1), ENGINE.expired_event)
    stats = store.stats()
    assert stats.sessions_by_state == {"in_progress": 1}
    assert (stats.active_sessions, stats.total_created) == (1, 5)
    assert (stats.total_completed, stats.total_failed, stats.total_cancelled) == (2, 1, 1)
    assert stats.avg_session_duration_seconds == pytest.approx(120.0)


def test_list_and_count(make_store: MakeStore) -> None:
    store = make_store()
    for index in range(4):
        create(store, f"s{index}", at=NOW + timedelta(seconds=index))
    query = SessionQuery(created_after=NOW + timedelta(seconds=1), limit=2)
    assert [s.id for s in store.list_sessions(query)] == ["s3", "s2"]
    assert store.count_sessions(query) == 3
    assert [s.id for s in store.list_sessions(SessionQuery(limit=2, offset=2))] == ["s1", "s0"]
    assert store.list_sessions(SessionQuery(created_before=NOW)) == []


def test_list_filters_by_status_operation_parent_and_search(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "parent", operation_id="chord")
    create(store, "Child-A", operation_id="member", parent_id="parent", at=NOW + timedelta(1))
    create(store, "child-b", operation_id="member", parent_id="parent", at=NOW + timedelta(2))
    store.apply("child-b", complete(), history_limit=HISTORY)

    def ids(**filters: object) -> list[str]:
        return [s.id for s in store.list_sessions(SessionQuery(**filters))]  # type: ignore[arg-type]

    assert ids(statuses=["completed"]) == ["child-b"]
    assert ids(statuses=["initializing", "in_progress"]) == ["Child-A", "parent"]
    assert ids(operation_id="member") == ["child-b", "Child-A"]
    assert ids(parent_id="parent") == ["child-b", "Child-A"]
    assert ids(search="CHILD") == ["child-b", "Child-A"]
    assert ids(search="chor") == ["parent"]
    assert ids(search="100%_") == []
    assert store.count_sessions(SessionQuery(statuses=["completed"], parent_id="parent")) == 1


def test_sessions_ties_on_created_at_are_ordered_by_id(make_store: MakeStore) -> None:
    store = make_store()
    for session_id in ("b", "a", "c"):
        create(store, session_id)
    assert [s.id for s in store.list_sessions(SessionQuery())] == ["c", "b", "a"]


def test_pages_across_several_statuses(make_store: MakeStore) -> None:
    store = make_store()
    for index in range(12):
        create(store, f"s{index:02d}", at=NOW + timedelta(seconds=index % 7))
        if index % 3 == 1:
            store.apply(f"s{index:02d}", update(5), history_limit=HISTORY)
        elif index % 3 == 2:
            store.apply(f"s{index:02d}", complete(), history_limit=HISTORY)
    everyone = store.list_sessions(SessionQuery(limit=100))
    wanted = ["initializing", "in_progress"]
    expected = [s.id for s in everyone if s.status in wanted]
    assert len(expected) == 8
    for offset in range(0, 10, 3):
        page = store.list_sessions(SessionQuery(statuses=wanted, limit=3, offset=offset))
        assert [s.id for s in page] == expected[offset : offset + 3]
    assert store.count_sessions(SessionQuery(statuses=wanted)) == 8


def test_live_counts_match_the_sessions(make_store: MakeStore) -> None:
    store = make_store()
    for index in range(9):
        create(store, f"s{index}")
        if index % 3 == 0:
            store.apply(f"s{index}", update(5), history_limit=HISTORY)
        if index % 3 == 1:
            store.apply(f"s{index}", complete(), history_limit=HISTORY)
        if index == 0:
            store.apply(
                "s0", functools.partial(ENGINE.pause, reason="", now=NOW), history_limit=HISTORY
            )
    store.purge_finished(NOW + timedelta(hours=1), ENGINE.expired_event, limit=2)
    listed = store.list_sessions(SessionQuery(limit=100))
    counted: dict[str, int] = {}
    for session in listed:
        counted[session.status] = counted.get(session.status, 0) + 1
    assert store.stats().sessions_by_state == counted
    assert store.count_sessions(SessionQuery()) == len(listed)
    for status in counted:
        assert store.count_sessions(SessionQuery(statuses=[status])) == counted[status]


def test_a_batch_leaves_what_writing_each_update_in_turn_leaves(make_store: MakeStore) -> None:
    """History thinned alike (across stride changes), the same events, numbered in order."""
    store = make_store()
    create(store, "one-by-one")
    create(store, "batched")
    percentages = [float(p % 100) for p in range(1, 121)]
    for percentage in percentages:
        store.apply("one-by-one", update(percentage), history_limit=HISTORY)
    first_seq = store.last_seq()
    results = []
    done = 0
    for size in (1, 7, 30, 2, 80):
        batch = [update(p) for p in percentages[done : done + size]]
        results += store.apply_many([("batched", batch)], history_limit=HISTORY)
        done += size
    assert done == len(percentages)

    def shape(session_id: str) -> list[tuple[int, float | None]]:
        session = store.get(session_id)
        assert session is not None
        return [(s.index, getattr(s.state, "percentage", None)) for s in session.history]

    assert shape("batched") == shape("one-by-one")
    assert len(shape("batched")) <= HISTORY + 1
    batched = store.get("batched", with_history=False)
    assert batched is not None
    assert batched.percentage == percentages[-1]
    logged = store.events_since(first_seq, limit=10_000)
    assert [e.seq for e in logged] == list(range(first_seq + 1, store.last_seq() + 1))
    updates = [e.data["percentage"] for e in logged if e.event_type == "ProgressUpdated"]
    assert updates == percentages
    assert [e.seq for r in results for e in r.events] == [e.seq for e in logged]


def test_apply_many_applies_each_run_in_order_and_stops_a_run_at_a_refusal(
    make_store: MakeStore,
) -> None:
    store = make_store()
    for session_id in ("a", "b", "c"):
        create(store, session_id)
    store.apply("c", complete(), history_limit=HISTORY)
    first_seq = store.last_seq()

    def refuse(session: ProgressSession) -> Change:
        raise InvalidTransition("no")

    results = store.apply_many(
        [
            ("b", [update(10), update(20), refuse, update(30)]),
            ("a", [update(5), update(6)]),
            ("missing", [update(1)]),
            ("c", [update(50)]),
        ],
        history_limit=HISTORY,
    )
    by_id = {result.session_id: result for result in results}
    assert (by_id["a"].applied, by_id["a"].error) == (2, None)
    assert by_id["b"].applied == 2
    assert isinstance(by_id["b"].error, InvalidTransition)
    assert isinstance(by_id["missing"].error, SessionNotFound)
    assert isinstance(by_id["c"].error, InvalidTransition)  # completed: final
    assert (by_id["missing"].applied, by_id["c"].applied) == (0, 0)
    # Each applied mutation is written with its own event and snapshot, in order.
    assert by_id["b"].session == store.get("b", with_history=False)
    assert store.get("b").percentage == 20  # type: ignore[union-attr]
    assert store.get("a").percentage == 6  # type: ignore[union-attr]
    assert [s.state.percentage for s in store.get("b").history[1:]] == [10, 20]  # type: ignore[union-attr]
    logged = store.events_since(first_seq)
    assert [e.seq for e in logged] == list(range(first_seq + 1, store.last_seq() + 1))
    assert sorted(e.seq for r in results for e in r.events) == [e.seq for e in logged]
    assert [
        e.data["percentage"]
        for e in logged
        if e.session_id == "b" and e.event_type == "ProgressUpdated"
    ] == [10, 20]
    assert store.stats().sessions_by_state["completed"] == 1


# -- creations in a batch ---------------------------------------------------------------


def creation(
    session_id: str, *, at: datetime = NOW, if_absent: bool = False, operation_id: str = "op"
) -> Creation:
    change = ENGINE.create(
        session_id=session_id, operation_id=operation_id, now=at, metadata={"k": "v"}
    )
    return Creation(change, if_absent=if_absent)


def test_a_creation_in_a_batch_is_what_create_writes(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "by-create")
    first_seq = store.last_seq()
    results = store.apply_many(
        [("by-batch", [creation("by-batch")])], history_limit=HISTORY, max_active=10
    )
    assert (results[0].applied, results[0].error, results[0].active_sessions) == (1, None, 2)
    one, other = store.get("by-create"), store.get("by-batch")
    assert one is not None
    assert other is not None
    assert other == one.replace(id="by-batch")
    assert results[0].session == store.get("by-batch", with_history=False)
    logged = store.events_since(first_seq)
    assert [(e.session_id, e.event_type.value) for e in logged] == [("by-batch", "SessionCreated")]
    assert results[0].events == logged
    stats = store.stats()
    assert (stats.total_created, stats.sessions_by_state) == (2, {"initializing": 2})


def test_a_batch_mixes_creations_updates_and_transitions_of_many_sessions(
    make_store: MakeStore,
) -> None:
    """Each run in order on the session as the write before left it; every
    event numbered in order; what the batch leaves is what one write after
    the other leaves."""
    store = make_store()
    create(store, "old-1")
    create(store, "old-2")
    store.apply("old-2", update(40), history_limit=HISTORY)
    subs = (SubOperation(id="a", name="A"),)
    first_seq = store.last_seq()
    runs: list[tuple[str, list[Write]]] = [
        ("new-b", [creation("new-b"), update(10), update(20), complete()]),
        ("old-2", [update(50), complete()]),
        ("new-a", [creation("new-a"), update(5)]),
        ("old-1", [update(1), functools.partial(ENGINE.pause, reason="p", now=NOW)]),
        (
            "new-c",
            [
                creation("new-c"),
                functools.partial(ENGINE.add_sub_operations, sub_operations=subs, now=NOW),
                update(
                    30,
                    sub_operation_updates=(
                        SubOperationUpdate(id="a", state=SubOperationState.ACTIVE),
                    ),
                ),
            ],
        ),
    ]
    results = store.apply_many(runs, history_limit=HISTORY, max_active=10)
    by_id = {result.session_id: result for result in results}
    assert {sid: (r.applied, r.error) for sid, r in by_id.items()} == {
        sid: (len(run), None) for sid, run in runs
    }
    assert store.get("new-b").status == "completed"  # type: ignore[union-attr]
    assert [s.state.status for s in store.get("new-b").history] == [  # type: ignore[union-attr]
        "initializing",
        "in_progress",
        "in_progress",
        "completed",
    ]
    assert store.get("new-a").percentage == 5  # type: ignore[union-attr]
    new_c = store.get("new-c")
    assert new_c is not None
    assert new_c.percentage == 30
    assert [(s.id, s.state) for s in new_c.sub_operations] == [("a", SubOperationState.ACTIVE)]
    assert store.get("old-1").status == "paused"  # type: ignore[union-attr]
    assert store.get("old-2").status == "completed"  # type: ignore[union-attr]
    for result in results:
        assert result.session == store.get(result.session_id, with_history=False)
    logged = store.events_since(first_seq)
    assert [e.seq for e in logged] == list(range(first_seq + 1, store.last_seq() + 1))
    assert sorted(e.seq for r in results for e in r.events) == [e.seq for e in logged]
    new_b = [e for e in logged if e.session_id == "new-b"]
    assert (new_b[0].event_type.value, new_b[-1].event_type.value) == (
        "SessionCreated",
        "SessionCompleted",
    )
    assert [e.data["percentage"] for e in new_b if e.event_type == "ProgressUpdated"] == [10, 20]
    stats = store.stats()
    assert stats.total_created == 5
    assert stats.sessions_by_state == {"completed": 2, "paused": 1, "in_progress": 2}
    assert stats.total_completed == 2


def test_a_creation_of_an_existing_session_is_refused_or_skipped_if_absent(
    make_store: MakeStore,
) -> None:
    store = make_store()
    create(store, "s1")
    store.apply("s1", update(40), history_limit=HISTORY)
    first_seq = store.last_seq()
    results = store.apply_many(
        [
            ("s1", [creation("s1", if_absent=True), update(50)]),
            ("s2", [creation("s2"), creation("s2", if_absent=True), update(7)]),
        ],
        history_limit=HISTORY,
        max_active=10,
    )
    by_id = {result.session_id: result for result in results}
    # Skipped: no event, counted as applied, the run goes on with the session as it is.
    assert (by_id["s1"].applied, by_id["s1"].error) == (2, None)
    assert store.get("s1").percentage == 50  # type: ignore[union-attr]
    assert store.get("s1").created_at == NOW  # type: ignore[union-attr]
    assert (by_id["s2"].applied, by_id["s2"].error) == (3, None)
    assert store.get("s2").percentage == 7  # type: ignore[union-attr]
    assert [
        (e.session_id, e.event_type.value)
        for e in store.events_since(first_seq)
        if e.event_type != "StateChanged"
    ] == [("s1", "ProgressUpdated"), ("s2", "SessionCreated"), ("s2", "ProgressUpdated")]
    before = (store.get("s1"), store.stats(), store.last_seq())
    refused = store.apply_many(
        [("s1", [creation("s1"), update(90)])], history_limit=HISTORY, max_active=10
    )
    assert refused[0].applied == 0
    assert isinstance(refused[0].error, InvalidProgress)
    assert "already exists" in str(refused[0].error)
    assert (store.get("s1"), store.stats(), store.last_seq()) == before
    assert store.stats().total_created == 2


def test_capacity_is_checked_for_each_creation_as_it_is_written(make_store: MakeStore) -> None:
    store = make_store()
    create(store, "a")
    create(store, "b")
    results = store.apply_many(
        [
            ("a", [complete()]),  # frees a place before the creations (id order)
            ("c", [creation("c"), update(1)]),
            ("d", [creation("d"), update(2)]),
        ],
        history_limit=HISTORY,
        max_active=2,
    )
    by_id = {result.session_id: result for result in results}
    assert (by_id["a"].applied, by_id["c"].applied, by_id["c"].error) == (1, 2, None)
    assert by_id["c"].active_sessions == 2
    assert (by_id["d"].applied, by_id["d"].active_sessions) == (0, 2)
    assert isinstance(by_id["d"].error, CapacityExceeded)
    assert "max_concurrent_sessions" in str(by_id["d"].error)
    assert store.get("d") is None
    assert store.stats().total_created == 3
    # An existing session skipped by an if_absent creation takes no place.
    skipped = store.apply_many(
        [("c", [creation("c", if_absent=True), update(3)])], history_limit=HISTORY, max_active=2
    )
    assert (skipped[0].applied, skipped[0].error) == (2, None)


def test_a_creation_only_creates_the_session_of_its_run(make_store: MakeStore) -> None:
    store = make_store()
    results = store.apply_many([("s1", [creation("other")])], history_limit=HISTORY)
    assert isinstance(results[0].error, InvalidProgress)
    assert store.get("other") is None
    assert store.get("s1") is None
