"""The journal's files: one per store, written atomically, claimed by one process at a time.

A claim is a POSIX record lock: it keeps out every other process, and this
process's other threads through its own register; it dies with its process,
so a file a crashed replayer held is claimed again.
"""

from __future__ import annotations

import functools
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from celery_progress_mcp import ProgressConfig
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.store.base import Creation, Write
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.store.state_dir import STATE_DIR_ENV, state_directory
from celery_progress_mcp.testing import eventually
from celery_progress_mcp.tracking import journal as journal_module
from celery_progress_mcp.tracking.journal import (
    JOURNAL_DIR_NAME,
    UNREADABLE_SUFFIX,
    Journal,
)
from celery_progress_mcp.tracking.journal_codec import decode_journal

ENGINE = Engine(ProgressConfig())
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
#: A process that claims the journal file given and holds it until it is killed.
HOLDER = """
import sys, time
from pathlib import Path
from celery_progress_mcp.tracking.journal import Journal
path = Path(sys.argv[1])
claim = Journal(path.parent, "store").claim(path)
print("held" if claim is not None else "refused", flush=True)
time.sleep(600)
"""


def _writes(session_id: str = "s") -> list[tuple[str, Write]]:
    created = ENGINE.create(session_id=session_id, operation_id="op", now=NOW)
    return [
        (session_id, Creation(created)),
        (session_id, functools.partial(ENGINE.complete, result_summary="ok", now=NOW)),
    ]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal" / "store", "store")


def test_a_journal_is_kept_per_store_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    assert Journal.of(MemoryStore()) is None  # nothing of it outlives the process
    first = Journal.of(SqlStore(f"sqlite:///{tmp_path / 'a.db'}", create_schema=False))
    again = Journal.of(SqlStore(f"sqlite:///{tmp_path / 'a.db'}", create_schema=False))
    other = Journal.of(SqlStore(f"sqlite:///{tmp_path / 'b.db'}", create_schema=False))
    assert first is not None
    assert again is not None
    assert other is not None
    assert first.directory == again.directory != other.directory
    assert first.directory.parent == tmp_path / JOURNAL_DIR_NAME
    assert first.store == f"sqlite+pysqlite:///{tmp_path / 'a.db'}"


def test_a_server_store_is_named_without_its_password(tmp_path: Path) -> None:
    store = SqlStore("postgresql://app:s3cret@db.example:5433/progress", create_schema=False)
    journal = Journal.of(store, {STATE_DIR_ENV: str(tmp_path)})
    assert journal is not None
    assert journal.store == "postgresql+psycopg://app@db.example:5433/progress"
    assert "s3cret" not in journal.store


def test_the_state_directory_follows_the_default_stores_rule(tmp_path: Path) -> None:
    assert state_directory({STATE_DIR_ENV: str(tmp_path)}) == tmp_path
    assert state_directory({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "celery-progress-mcp"
    home = Path.home() / ".local" / "state" / "celery-progress-mcp"
    assert state_directory({}) == home


def test_a_file_is_written_whole_private_and_in_order(journal: Journal) -> None:
    first = journal.keep(_writes("a"))
    second = journal.keep(_writes("b"))
    assert first.path is not None
    assert second.path is not None
    assert (first.kept, first.left_out) == (2, 0)
    assert journal.pending() == [first.path, second.path]
    # No temporary file is left.
    assert set(os.listdir(journal.directory)) == {first.path.name, second.path.name}
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.directory.stat().st_mode) == 0o700
    decoded = decode_journal(first.path.read_bytes(), "store", ENGINE)
    assert [session_id for session_id, _ in decoded] == ["a", "a"]


def test_nothing_that_is_data_writes_no_file(journal: Journal) -> None:
    kept = journal.keep([("s", lambda session: ENGINE.heartbeat(session, now=NOW))])
    assert (kept.path, kept.kept, kept.left_out) == (None, 0, 1)
    assert journal.pending() == []


def test_a_file_is_claimed_once_then_done_or_set_aside(journal: Journal) -> None:
    path = journal.keep(_writes()).path
    assert path is not None
    claim = journal.claim(path)
    assert claim is not None
    assert journal.claim(path) is None  # this process's other threads are kept out too
    assert claim.read() == path.read_bytes()
    claim.release()
    again = journal.claim(path)
    assert again is not None
    again.done()
    assert not path.exists()
    assert journal.pending() == []
    assert journal.claim(path) is None

    unreadable = journal.keep(_writes()).path
    assert unreadable is not None
    aside = journal.claim(unreadable)
    assert aside is not None
    aside.set_aside()
    assert journal.pending() == []
    assert unreadable.with_name(unreadable.name + UNREADABLE_SUFFIX).exists()


def test_a_claim_keeps_other_processes_out_and_dies_with_its_process(journal: Journal) -> None:
    path = journal.keep(_writes()).path
    assert path is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert journal.claim(path) is None
        holder.kill()  # a replayer that crashed while it held the file
        holder.wait(30)
        claim = eventually(lambda: journal.claim(path), timeout_s=30, what="the claim, freed")
        claim.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)


def test_a_temporary_file_left_by_a_dead_writer_is_removed(journal: Journal) -> None:
    kept = journal.keep(_writes()).path
    assert kept is not None
    left = journal.directory / ".tmp-00000000000000000001-1-dead.json"
    left.write_bytes(b'{"half": ')
    assert journal.pending() == [kept]  # never claimed
    assert left.exists()  # too young to be called dead
    old = time.time() - journal_module.STALE_TEMP_S - 60
    os.utime(left, (old, old))
    assert journal.pending() == [kept]
    assert not left.exists()
