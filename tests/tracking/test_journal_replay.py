"""What a tracker could not write at close because the store was down is kept on
the machine, and written by the next tracker that opens the same store there.

On PostgreSQL (a private server the tests stop and start) and on SQLite (made
unavailable by another connection holding its write lock past the store's
patience: a backup, a stuck migration). Each test has a state directory of
its own. The store's own log is the truth the sessions are checked against:
each session's events in order, ``since=`` skipping nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from celery_progress_mcp import (
    Cancelled,
    Completed,
    InProgress,
    ProgressConfig,
    ProgressEvent,
    ProgressEventType,
    ProgressSession,
    ProgressTracker,
)
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.store.base import Creation, Write
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.store.sql import connect as sql_connect
from celery_progress_mcp.store.sql import transactions as sql_transactions
from celery_progress_mcp.store.state_dir import STATE_DIR_ENV
from celery_progress_mcp.testing import FakeClock, eventually
from celery_progress_mcp.tracking import outage
from celery_progress_mcp.tracking.journal import UNREADABLE_SUFFIX, Journal
from celery_progress_mcp.tracking.journal_codec import JOURNAL_FORMAT, JOURNAL_VERSION
from tests.store.private_postgres import PrivatePostgres

E = ProgressEventType
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ProgressConfig(update_interval_ms=0)
#: Percentages reported while the store is down.
DURING_OUTAGE = (20.0, 35.0, 50.0, 75.0, 90.0)
#: A wait for another thread or process (never a timing assertion).
WAIT_S = 60.0
NOW = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
#: Journal files two processes race for.
FILES = 8
#: A process that gets ready (imports, its store), says so, opens the store (makes a
#: tracker) at the signal, then exits.
OPENER = """
import sys, time
from pathlib import Path
from celery_progress_mcp import ProgressConfig, ProgressTracker
from celery_progress_mcp.store.sql import SqlStore
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
store = SqlStore(url)
ready.touch()
while not go.exists():
    time.sleep(0.0005)
tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
tracker.close()
"""


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv(STATE_DIR_ENV, str(directory))
    # A store that refuses connections is given up on quickly at close.
    monkeypatch.setattr(outage, "JOURNAL_AFTER_S", 0.3)
    return directory


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    yield server
    server.close()


def _journal(url: str) -> Journal:
    journal = Journal.of(SqlStore(url, create_schema=False))
    assert journal is not None
    return journal


def _events(store: SqlStore, session_id: str, since: int = 0) -> list[ProgressEvent]:
    return store.events_since(since, session_id=session_id)


def _percentages(events: list[ProgressEvent]) -> list[float]:
    return [e.data["percentage"] for e in events if e.event_type == E.PROGRESS_UPDATED]


def _completed(tracker: ProgressTracker, session_id: str) -> ProgressSession:
    def ended() -> ProgressSession:
        session = tracker.get_session(session_id)
        assert isinstance(session.state, Completed), session.state
        return session

    return eventually(ended, timeout_s=WAIT_S, what=f"{session_id} completed")


def _report_while_down(tracker: ProgressTracker, session_id: str) -> None:
    for percentage in DURING_OUTAGE:
        tracker.update_progress(session_id, InProgress(percentage=percentage))
    tracker.complete_session(session_id, "imported")


def _check_written_in_order(store: SqlStore, session_id: str, seen: int) -> None:
    """The writes kept in the journal, in the log after ``seen``: in order, once each."""
    events = _events(store, session_id, seen)
    assert [e.event_type for e in events] == [E.PROGRESS_UPDATED] * len(DURING_OUTAGE) + [
        E.SESSION_COMPLETED
    ]
    assert _percentages(events) == list(DURING_OUTAGE)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)


def test_postgresql_down_at_close_the_next_tracker_writes_what_was_kept(
    server: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlStore(server.url)
    tracker = ProgressTracker(CONFIG, store=store)
    session_id = tracker.create_session("import")
    tracker.update_progress(session_id, InProgress(percentage=10.0))
    tracker.flush()
    seen = store.last_seq()
    journal = _journal(server.url)

    server.stop()
    try:
        _report_while_down(tracker, session_id)
        with caplog.at_level(logging.WARNING, logger="celery_progress_mcp.tracking"):
            tracker.close()
        assert tracker.health()["outage"]["journalled"] == len(DURING_OUTAGE) + 1
        store.close()
        [kept] = journal.pending()
        assert "sessions lost" not in caplog.text
        assert f"kept in {kept}" in caplog.text
    finally:
        server.start()

    reader_store = SqlStore(server.url)
    reader = ProgressTracker(CONFIG, store=reader_store)
    try:
        session = _completed(reader, session_id)
        assert session.state.result_summary == "imported"  # type: ignore[union-attr]
        assert session.metadata == {}
        _check_written_in_order(reader_store, session_id, seen)
        with reader.subscribe_to_events(session_id=session_id, since=seen) as subscription:
            replayed = [subscription.get(timeout=WAIT_S) for _ in range(len(DURING_OUTAGE) + 1)]
        assert replayed == _events(reader_store, session_id, seen)  # since= skips nothing
        eventually(lambda: journal.pending() == [], timeout_s=WAIT_S, what="the file removed")
    finally:
        reader.close()
        reader_store.close()


def test_a_store_still_down_at_open_leaves_the_file_for_the_periodic_retry(
    server: PrivatePostgres,
) -> None:
    journal = _journal(server.url)
    path = journal.keep(_session_writes("later")).path
    clock = FakeClock()  # no threads: the tracker replays in the caller's thread
    config = ProgressConfig(update_interval_ms=0, cleanup_interval_seconds=60)
    server.stop()
    try:
        store = SqlStore(server.url)
        tracker = ProgressTracker(config, store=store, clock=clock)
        assert journal.pending() == [path]  # tried as the tracker was made: left for later
    finally:
        server.start()
    try:
        clock.advance(60)  # the periodic cleanup
        assert journal.pending() == []
        assert isinstance(tracker.get_session("later").state, Completed)
    finally:
        tracker.close()
        store.close()


def test_sqlite_locked_past_the_stores_patience_at_close_is_kept_and_written_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The store waits 30 s for SQLite's lock, then retries for 60 s: shortened here.
    monkeypatch.setattr(sql_connect, "SQLITE_BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(sql_transactions, "CONTENTION_DEADLINE_S", 0.3)
    path = tmp_path / "progress.sqlite3"
    url = f"sqlite:///{path}"
    store = SqlStore(url)
    tracker = ProgressTracker(CONFIG, store=store)
    session_id = tracker.create_session("import")
    tracker.update_progress(session_id, InProgress(percentage=10.0))
    tracker.flush()
    seen = store.last_seq()
    journal = _journal(url)

    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        _report_while_down(tracker, session_id)
        with caplog.at_level(logging.WARNING, logger="celery_progress_mcp.tracking"):
            tracker.close()
        store.close()
        assert len(journal.pending()) == 1
        assert "sessions lost" not in caplog.text
    finally:
        other.execute("ROLLBACK")
        other.close()

    clock = FakeClock()
    reader_store = SqlStore(url)
    reader = ProgressTracker(CONFIG, store=reader_store, clock=clock)
    try:
        assert journal.pending() == []
        assert isinstance(reader.get_session(session_id).state, Completed)
        _check_written_in_order(reader_store, session_id, seen)
    finally:
        reader.close()
        reader_store.close()


def _session_writes(
    session_id: str, *, created: bool = True, ended: bool = True
) -> list[tuple[str, Write]]:
    """A task's writes as a closing process would have kept them."""
    engine = Engine(CONFIG)
    writes: list[tuple[str, Write]] = []
    if created:
        change = engine.create(session_id=session_id, operation_id="op", now=NOW)
        writes.append((session_id, Creation(change)))
    for percentage in DURING_OUTAGE:
        state = InProgress(percentage=percentage)
        update = functools.partial(
            engine.update, state=state, sub_operation_updates=(), metadata=None, now=NOW
        )
        writes.append((session_id, update))
    if ended:
        complete = functools.partial(engine.complete, result_summary="ok", now=NOW)
        writes.append((session_id, complete))
    return writes


def test_a_write_refused_because_the_session_moved_on_is_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'progress.sqlite3'}"
    store = SqlStore(url)
    writer = ProgressTracker(CONFIG, store=store, clock=FakeClock())
    writer.create_session("op", session_id="moved-on")
    journal = _journal(url)
    journal.keep(_session_writes("moved-on", created=False))
    writer.cancel_session("moved-on", "cancelled from the dashboard meanwhile")
    seen = store.last_seq()

    with caplog.at_level(logging.WARNING, logger="celery_progress_mcp.tracking"):
        reader = ProgressTracker(CONFIG, store=store, clock=FakeClock())
    try:
        assert journal.pending() == []  # written: what the store refused is dropped
        assert isinstance(reader.get_session("moved-on").state, Cancelled)
        assert _events(store, "moved-on", seen) == []
        assert "journalled progress writes of moved-on refused by the store" in caplog.text
    finally:
        reader.close()
        writer.close()
        store.close()


def test_a_creation_that_exists_is_skipped_and_the_rest_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'progress.sqlite3'}"
    store = SqlStore(url)
    dispatcher = ProgressTracker(CONFIG, store=store, clock=FakeClock())
    dispatcher.create_session("op", session_id="exists")  # made again by the worker, kept
    journal = _journal(url)
    journal.keep(_session_writes("exists"))
    reader = ProgressTracker(CONFIG, store=store, clock=FakeClock())
    try:
        assert isinstance(reader.get_session("exists").state, Completed)
        events = _events(store, "exists")
        assert [e.event_type for e in events].count(E.SESSION_CREATED) == 1
        assert _percentages(events) == list(DURING_OUTAGE)
    finally:
        reader.close()
        dispatcher.close()
        store.close()


def test_a_file_no_version_can_read_is_set_aside_one_of_another_process_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'progress.sqlite3'}"
    journal = _journal(url)
    good = journal.keep(_session_writes("good")).path
    assert good is not None
    garbage = journal.directory / "00000000000000000001-1-garbage.json"
    garbage.write_bytes(b"{not json")
    elsewhere = journal.directory / "00000000000000000002-1-elsewhere.json"
    document = {
        "format": JOURNAL_FORMAT,
        "version": JOURNAL_VERSION,
        "store": journal.store,
        "writes": [{"session": "s", "call": "plugin.not_here", "arguments": {}}],
    }
    elsewhere.write_text(json.dumps(document))

    store = SqlStore(url)
    with caplog.at_level(logging.INFO, logger="celery_progress_mcp.tracking"):
        tracker = ProgressTracker(CONFIG, store=store, clock=FakeClock())
    try:
        assert journal.pending() == [elsewhere]  # left for a process that knows the call
        assert garbage.with_name(garbage.name + UNREADABLE_SUFFIX).exists()
        assert isinstance(tracker.get_session("good").state, Completed)
        assert f"{garbage} cannot be read, set aside" in caplog.text
        assert f"{elsewhere} left for another process" in caplog.text
    finally:
        tracker.close()
        store.close()


def test_two_processes_opening_the_store_at_once_write_each_file_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'progress.sqlite3'}"
    SqlStore(url).close()  # the schema, before the race
    journal = _journal(url)
    sessions = [f"s{number}" for number in range(FILES * 2)]
    for first, second in zip(sessions[::2], sessions[1::2], strict=True):
        # Not ended: written twice, their updates would show twice (an end refuses them).
        writes = _session_writes(first, ended=False) + _session_writes(second, ended=False)
        journal.keep(writes)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{number}" for number in range(2)]
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, url, str(path), str(go)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in ready
    ]
    eventually(lambda: all(path.exists() for path in ready), timeout_s=WAIT_S, what="both ready")
    go.touch()  # both open the store at once
    for opener in openers:
        _, errors = opener.communicate(timeout=120)
        assert opener.returncode == 0, errors
        assert "set aside" not in errors

    store = SqlStore(url)
    try:
        assert journal.pending() == []
        for session_id in sessions:
            events = _events(store, session_id)
            assert [e.event_type for e in events].count(E.SESSION_CREATED) == 1
            assert _percentages(events) == list(DURING_OUTAGE)  # each update once
    finally:
        store.close()
