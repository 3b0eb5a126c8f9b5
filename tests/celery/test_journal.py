"""The store down as a worker stops: its pool process keeps what it could not write in
the journal on this machine, and the next process that opens the store writes it.

A real prefork worker (``-c 1``, Redis broker and result backend) on a
PostgreSQL server of the test's own, stopped while the task runs: the task
ends, the worker gets SIGTERM (a warm shutdown) and exits. Once PostgreSQL is
back, a client that only installs the app and exits writes what the pool
process kept: the session ends Completed with the task's result summary, its
progress in order, and no liveness sweep or result-backend answer involved
(so never ``WORKER_LOST``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from celery_progress_mcp import Completed, ProgressEventType
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.store.state_dir import STATE_DIR_ENV
from celery_progress_mcp.tracking.journal import UNREADABLE_SUFFIX, Journal
from tests.celery.conftest import project_config
from tests.celery.helpers import wait_status
from tests.celery.project import Project, make_project
from tests.celery.workers import ROOT, Worker, start_worker
from tests.store.private_postgres import PrivatePostgres

E = ProgressEventType
#: The task's percentages: the first written before the store stops, the rest after.
PERCENTAGES = [10.0, 30.0, 50.0, 70.0, 90.0]
#: A client: makes the app (``install`` opens the store), dispatches nothing, exits.
CLIENT = """
from tests.celery.project import ProjectConfig, make_project
make_project(ProjectConfig.from_env())
"""


def test_store_down_and_worker_stopped_the_next_process_writes_the_tasks_end(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    projects: list[tuple[Project, list[Worker]]],
) -> None:
    # The worker and the next process share this machine's state directory.
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    server = PrivatePostgres()
    server.start()
    try:
        config = dataclasses.replace(project_config("redis-sqlite", tmp_path), store=server.url)
        project = make_project(config)
        worker = start_worker(project, tmp_path, concurrency=1)
        projects.append((project, [worker]))
        gate = tmp_path / "gate"
        result = project.gated.delay(str(gate), PERCENTAGES)
        wait_status(project.tracker, result.id, "in_progress")
        project.tracker.flush()  # nothing of this process's own waits for the store
        seen = project.tracker.store.last_seq()
        journal = Journal.of(project.tracker.store)
        assert journal is not None

        server.stop()
        gate.touch()
        assert result.get(timeout=60) == "passed the gate"
        worker.stop()  # SIGTERM: a warm shutdown, with the store down
        assert worker.process.returncode == 0, worker.log_tail()
        assert len(journal.pending()) == 1, worker.log_tail()
        assert "buffered writes of 1 sessions kept in" in worker.log.read_text()

        server.start()
        client = subprocess.run(
            [sys.executable, "-c", CLIENT],
            cwd=ROOT,
            env={**os.environ, **config.env(), "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert client.returncode == 0, client.stderr
        assert journal.pending() == [], client.stderr  # the client wrote it
        assert not list(journal.directory.glob(f"*{UNREADABLE_SUFFIX}"))

        store = SqlStore(server.url)
        try:
            session = store.get(result.id)
            assert session is not None
            assert isinstance(session.state, Completed), session.state
            assert session.state.result_summary == "'passed the gate'"
            assert "celery_ended_from" not in session.metadata  # not the backend's word
            events = store.events_since(seen, session_id=result.id)
        finally:
            store.close()
        progress = [e.data["percentage"] for e in events if e.event_type == E.PROGRESS_UPDATED]
        assert progress == PERCENTAGES[1:]
        assert events[-1].event_type == E.SESSION_COMPLETED
    finally:
        server.close()
