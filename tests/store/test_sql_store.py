"""What only the SQL store has to get right: several stores (processes) on one
database, commit-ordered sequence numbers, bad input, outages, URLs."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from celery_progress_mcp import (
    ConfigError,
    InvalidProgress,
    ProgressConfig,
    ProgressTracker,
    SessionQuery,
    SubOperation,
    SubOperationUpdate,
)
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.core.errors import StoreUnavailable
from celery_progress_mcp.store.base import Creation, Mutation, Write
from celery_progress_mcp.store.sql import SqlStore, normalize_url
from celery_progress_mcp.store.sql.executor import Executor
from celery_progress_mcp.store.sql.failures import Failure, classify
from celery_progress_mcp.store.sql.transactions import CommitInDoubt
from celery_progress_mcp.tracking.store_factory import store_from_url

from .test_store_port import HISTORY, NOW, create, update

ENGINE = Engine(ProgressConfig(granularity_level="Verbose"))


@pytest.fixture
def two_stores(sql_store_url: str) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database, as two processes would have."""
    first, second = SqlStore(sql_store_url), SqlStore(sql_store_url)
    yield first, second
    first.close()
    second.close()


def add_subs(store: SqlStore, session_id: str, *ids: str) -> None:
    subs = tuple(SubOperation(id=sub_id, name=sub_id) for sub_id in ids)
    store.apply(
        session_id,
        functools.partial(ENGINE.add_sub_operations, sub_operations=subs, now=NOW),
        history_limit=HISTORY,
    )


def sub_update(sub_id: str, percentage: float) -> Mutation:
    return functools.partial(
        ENGINE.change_sub_operation,
        update=SubOperationUpdate(id=sub_id, percentage=percentage),
        now=NOW,
    )


def test_a_store_reads_what_another_wrote(two_stores: tuple[SqlStore, SqlStore]) -> None:
    first, second = two_stores
    create(first, "s")
    first.apply("s", update(10), history_limit=HISTORY)  # first now holds s in its cache
    second.apply("s", update(20, metadata={"by": "second"}), history_limit=HISTORY)
    session, _ = first.apply("s", update(30), history_limit=HISTORY)
    # first's cached copy was stale: it must have read what second wrote.
    assert session.metadata == {"k": "v", "by": "second"}
    history = second.get("s").history  # type: ignore[union-attr]
    assert [snap.state.percentage for snap in history[1:]] == [10, 20, 30]  # type: ignore[union-attr]


def test_writers_of_different_sub_operations_lose_no_update(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = two_stores
    create(first, "chord")
    ids = [f"member-{index}" for index in range(4)]
    add_subs(first, "chord", *ids)
    errors: list[BaseException] = []

    def write(store: SqlStore, sub_id: str) -> None:
        try:
            for step in range(1, 26):
                store.apply("chord", sub_update(sub_id, step * 4.0), history_limit=HISTORY)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(first if index % 2 else second, sub_id))
        for index, sub_id in enumerate(ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    session = first.get("chord")
    assert session is not None
    assert {sub.id: sub.percentage for sub in session.sub_operations} == dict.fromkeys(ids, 100.0)
    updates = [
        e for e in first.events_since(0, limit=10_000) if e.event_type == "SubOperationUpdated"
    ]
    assert len(updates) == 100


def test_a_reader_never_sees_a_sequence_number_before_the_one_below_it(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = two_stores
    for index in range(4):
        create(first, f"s{index}")
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(store: SqlStore, session_id: str) -> None:
        try:
            for percentage in range(1, 41):
                store.apply(session_id, update(percentage), history_limit=HISTORY)
        except BaseException as exc:
            errors.append(exc)

    seen: list[int] = []
    start = first.last_seq()

    def read() -> None:
        cursor = start
        while not stop.is_set() or cursor < first.last_seq():
            for event in first.events_since(cursor):
                seen.append(event.seq)
                cursor = event.seq

    writers = [
        threading.Thread(target=write, args=(store, f"s{index}"))
        for index, store in enumerate((first, second, first, second))
    ]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    assert errors == []
    # Read while four writers committed: every number, once, in order, no gap skipped.
    # Per session: StateChanged and ProgressUpdated for the first update, then one each.
    assert seen == list(range(start + 1, start + 1 + 4 * 41))


def test_input_the_columns_cannot_hold_is_refused_and_nothing_written(
    sql_store_url: str,
) -> None:
    store = SqlStore(sql_store_url)
    try:
        with pytest.raises(InvalidProgress, match="at most 255"):
            create(store, "x" * 256)
        with pytest.raises(InvalidProgress, match="NUL"):
            create(store, "nul\x00id")
        create(store, "ok")
        with pytest.raises(InvalidProgress, match="NUL"):
            add_subs(store, "ok", "bad\x00sub")
        assert store.count_sessions(SessionQuery()) == 1
        assert store.get("ok").sub_operations == ()  # type: ignore[union-attr]
        assert store.stats().total_created == 1
    finally:
        store.close()


def test_metadata_may_hold_anything_json_can(sql_store_url: str) -> None:
    store = SqlStore(sql_store_url)
    odd = {"nul": "a\x00b", "emoji": "\U0001f680", "big": "x" * 70_000, "float": 0.1 + 0.2}
    try:
        change = Engine(ProgressConfig(max_metadata_bytes=200_000)).create(
            session_id="odd", operation_id="op", now=NOW, metadata=odd
        )
        store.create(change, max_active=10, history_limit=HISTORY)
        assert store.get("odd").metadata == odd  # type: ignore[union-attr]
    finally:
        store.close()


def test_an_unreachable_server_is_unavailable_not_an_error() -> None:
    store = SqlStore("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    try:
        with pytest.raises(StoreUnavailable):
            create(store, "s")
        with pytest.raises(StoreUnavailable):
            store.apply("s", update(1), history_limit=HISTORY)
        with pytest.raises(StoreUnavailable):
            store.get("s")
        assert store.health()["status"] == "unavailable"
    finally:
        store.close()


def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'missing-directory' / 'progress.db'}")
    try:
        with pytest.raises(StoreUnavailable):
            create(store, "s")
        report = store.health()
        assert report["status"] == "unavailable"
        assert "unable to open" in report["error"]
    finally:
        store.close()


def test_bugs_are_not_mistaken_for_outages(sql_store_url: str) -> None:
    engine = create_engine(sql_store_url)
    try:
        with engine.connect() as connection, pytest.raises(sa_exc.DBAPIError) as raised:
            connection.execute(text("SELECT no_such_column FROM progress_sessions"))
        assert classify(raised.value) is Failure.OTHER
    finally:
        engine.dispose()
    refused = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(sa_exc.OperationalError) as down:
        refused.connect()
    assert classify(down.value) is Failure.UNAVAILABLE


def test_many_threads_on_two_sqlite_stores_never_see_database_is_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    stores = [SqlStore(url), SqlStore(url)]
    errors: list[BaseException] = []

    def write(index: int) -> None:
        store = stores[index % 2]
        try:
            create(store, f"s{index}")
            for percentage in range(1, 31):
                store.apply(f"s{index}", update(percentage), history_limit=HISTORY)
                store.get(f"s{index}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mariadb+pymysql"),
        ("sqlite:///progress.db", "sqlite+pysqlite"),
    ],
)
def test_bare_dialects_get_the_supported_drivers(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize("url", ["oracle://u@h/db", "not a url", "redis://localhost"])
def test_unsupported_urls_are_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        normalize_url(url)


def test_store_url_chooses_the_store(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path / 'chosen.db'}")
    try:
        assert isinstance(store, SqlStore)
        create(store, "s")
        assert store.get("s") is not None
    finally:
        store.close()


def test_times_come_back_aware_and_in_utc(sql_store_url: str) -> None:
    store = SqlStore(sql_store_url)
    try:
        create(store, "s")
        session = store.get("s")
        assert session is not None
        assert session.created_at == NOW
        assert session.created_at.tzinfo is not None
        assert session.created_at.utcoffset() == UTC.utcoffset(datetime.now(UTC))
    finally:
        store.close()


def _lost_answer(url: str) -> Exception:
    """The driver's error for a connection that died before the server's answer came."""
    backend = normalize_url(url).get_backend_name()
    if backend == "postgresql":
        import psycopg

        return psycopg.OperationalError("server closed the connection unexpectedly")
    if backend == "sqlite":
        import sqlite3

        return sqlite3.OperationalError("disk I/O error")
    import pymysql  # type: ignore[import-untyped]

    lost: Exception = pymysql.err.OperationalError(2013, "Lost connection to MySQL server")
    return lost


def _committing_then_losing_the_answer(url: str) -> Callable[[Executor], None]:
    """An ``Executor.commit`` whose commit happens but whose answer is lost."""
    real_commit = Executor.commit

    def commit_then_lose_the_answer(executor: Executor) -> None:
        real_commit(executor)
        raise _lost_answer(url)

    return commit_then_lose_the_answer


def test_a_write_whose_commit_was_in_doubt_is_never_applied_twice(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlStore(sql_store_url)
    commit_then_lose_the_answer = _committing_then_losing_the_answer(sql_store_url)

    try:
        change = ENGINE.create(session_id="s", operation_id="op", now=NOW)
        monkeypatch.setattr(Executor, "commit", commit_then_lose_the_answer)
        with pytest.raises(CommitInDoubt):
            store.create(change, max_active=10, history_limit=HISTORY)
        monkeypatch.undo()
        # Replayed as the outage buffer replays it: the same call object again.
        created = store.create(change, max_active=10, history_limit=HISTORY)
        assert [e.event_type.value for e in created] == ["SessionCreated"]
        mutation = update(10)
        monkeypatch.setattr(Executor, "commit", commit_then_lose_the_answer)
        with pytest.raises(CommitInDoubt):
            store.apply("s", mutation, history_limit=HISTORY)
        monkeypatch.undo()
        session, events = store.apply("s", mutation, history_limit=HISTORY)
        assert session.state.percentage == 10  # type: ignore[union-attr]
        assert [e.seq for e in events] == [e.seq for e in store.events_since(created[0].seq)]
        store.apply("s", update(20), history_limit=HISTORY)
        kinds = [e.event_type.value for e in store.events_since(0)]
        assert kinds == ["SessionCreated", "StateChanged", "ProgressUpdated", "ProgressUpdated"]
        assert len(store.get("s").history) == 3  # type: ignore[union-attr]
        assert store.stats().total_created == 1
    finally:
        monkeypatch.undo()
        store.close()


def test_a_batch_whose_commit_was_in_doubt_is_never_applied_twice(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlStore(sql_store_url)
    commit_then_lose_the_answer = _committing_then_losing_the_answer(sql_store_url)

    try:
        store.create(
            ENGINE.create(session_id="s", operation_id="op", now=NOW),
            max_active=10,
            history_limit=HISTORY,
        )
        mutations = [update(10), update(20), update(30)]
        monkeypatch.setattr(Executor, "commit", commit_then_lose_the_answer)
        with pytest.raises(CommitInDoubt):
            store.apply_many([("s", mutations)], history_limit=HISTORY)
        monkeypatch.undo()
        # Replayed one by one, as the outage buffer replays a batch.
        replayed = [store.apply("s", m, history_limit=HISTORY) for m in mutations]
        assert [session.state.percentage for session, _ in replayed] == [30, 30, 30]  # type: ignore[union-attr]
        updates = [e for e in store.events_since(0) if e.event_type == "ProgressUpdated"]
        assert [e.data["percentage"] for e in updates] == [10, 20, 30]
        assert sorted(e.seq for _, events in replayed for e in events) == [
            e.seq for e in store.events_since(1)
        ]
        assert len(store.get("s").history) == 4  # type: ignore[union-attr]
    finally:
        monkeypatch.undo()
        store.close()


def test_a_tracker_opens_the_store_its_config_names(sql_store_url: str) -> None:
    plain = sql_store_url.replace("+psycopg", "").replace("+pymysql", "")  # bare dialects
    tracker = ProgressTracker(ProgressConfig(store_url=plain))
    try:
        assert isinstance(tracker.store, SqlStore)
        session_id = tracker.create_session("op")
        tracker.complete_session(session_id)
        assert tracker.get_session(session_id).status == "completed"
        assert tracker.health()["status"] == "ok"
    finally:
        tracker.close()


def test_a_batch_creating_sessions_whose_commit_was_in_doubt_is_never_applied_twice(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlStore(sql_store_url)
    commit_then_lose_the_answer = _committing_then_losing_the_answer(sql_store_url)

    try:
        create(store, "old")
        creation = Creation(ENGINE.create(session_id="new", operation_id="op", now=NOW))
        skipped = Creation(ENGINE.create(session_id="old", operation_id="op", now=NOW), True)
        runs: list[tuple[str, list[Write]]] = [
            ("new", [creation, update(10), update(20)]),
            ("old", [skipped, update(5)]),
        ]
        first_seq = store.last_seq()
        monkeypatch.setattr(Executor, "commit", commit_then_lose_the_answer)
        with pytest.raises(CommitInDoubt):
            store.apply_many(runs, history_limit=HISTORY, max_active=10)
        monkeypatch.undo()
        # Replayed one write at a time, as the outage buffer replays a batch.
        replayed = [
            store.apply_many([(session_id, [write])], history_limit=HISTORY, max_active=10)[0]
            for session_id, run in runs
            for write in run
        ]
        assert [(r.applied, r.error) for r in replayed] == [(1, None)] * 5
        assert store.stats().total_created == 2
        new = store.get("new")
        assert new is not None
        assert new.percentage == 20
        assert [s.state.status for s in new.history] == [
            "initializing",
            "in_progress",
            "in_progress",
        ]
        logged = store.events_since(first_seq)
        assert [(e.session_id, e.event_type.value) for e in logged].count(
            ("new", "SessionCreated")
        ) == 1
        assert [e.data["percentage"] for e in logged if e.event_type == "ProgressUpdated"] == [
            10,
            20,
            5,
        ]
        # Each write's events reported once, by the replay of the last write of its run.
        assert sorted(e.seq for r in replayed for e in r.events) == [e.seq for e in logged]
    finally:
        monkeypatch.undo()
        store.close()


def test_a_creation_whose_commit_was_in_doubt_and_did_not_happen_is_written_on_replay(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlStore(sql_store_url)

    def lose_the_connection_instead(executor: Executor) -> None:
        executor.committing = True
        raise _lost_answer(sql_store_url)

    try:
        creation = Creation(ENGINE.create(session_id="new", operation_id="op", now=NOW))
        monkeypatch.setattr(Executor, "commit", lose_the_connection_instead)
        with pytest.raises(CommitInDoubt):
            store.apply_many([("new", [creation])], history_limit=HISTORY, max_active=10)
        monkeypatch.undo()
        assert store.get("new") is None
        result = store.apply_many([("new", [creation])], history_limit=HISTORY, max_active=10)
        assert [e.event_type.value for e in result[0].events] == ["SessionCreated"]
        assert store.stats().total_created == 1
    finally:
        monkeypatch.undo()
        store.close()
