"""A clean stop loses nothing accepted: pool processes recycled after every task
(``worker_max_tasks_per_child=1``), a worker stopped with SIGTERM right after its
tasks ended, a client that exits right after ``delay()``. On a SQLite store and
on PostgreSQL (this run's private schema).

Each test starts its own worker (Redis broker and result backend); the
result backend is the truth each session is checked against.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from celery_progress_mcp import Completed, Failed, ProgressSession
from celery_progress_mcp.core.states import TERMINAL_STATUSES
from celery_progress_mcp.testing import eventually
from tests.celery.conftest import close_project, project_config
from tests.celery.project import Project, make_project
from tests.celery.workers import ROOT, Worker, start_worker

STORES = ("redis-sqlite", "redis-postgresql")
#: Tasks run by pool processes recycled after each one (2 processes): what fits in
#: about a minute on a loaded 2-core machine.
RECYCLED_TASKS = 200
#: Every FAILING_EVERY-th task fails: the true state is not always Completed.
FAILING_EVERY = 10
#: Tasks ended just before their worker is stopped.
STOPPED_TASKS = 20
#: A client that dispatches tasks to a queue nobody consumes and exits at once.
CLIENT = """
from tests.celery.project import ProjectConfig, make_project
project = make_project(ProjectConfig.from_env())
for _ in range({tasks}):
    print(project.count.apply_async((3,), queue=project.config.prefix + ".nobody").id)
"""


def _project(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    projects: list[tuple[Project, list[Worker]]],
    **changes: int,
) -> Project:
    postgres = request.getfixturevalue("postgres_schema") if "postgresql" in kind else None
    config = dataclasses.replace(project_config(kind, tmp_path, postgres=postgres), **changes)
    project = make_project(config)
    worker = start_worker(project, tmp_path, concurrency=2)
    projects.append((project, [worker]))
    return project


def _sessions(project: Project, ids: list[str]) -> dict[str, ProgressSession]:
    return {session_id: project.tracker.get_session(session_id) for session_id in ids}


@pytest.mark.slow
@pytest.mark.parametrize("kind", STORES)
def test_pool_processes_recycled_after_every_task_leave_every_session_true(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    projects: list[tuple[Project, list[Worker]]],
) -> None:
    project = _project(kind, tmp_path, request, projects, max_tasks_per_child=1)
    results = [
        project.fail.delay() if number % FAILING_EVERY == 0 else project.count.delay(3, 0.0)
        for number in range(1, RECYCLED_TASKS + 1)
    ]
    for result in results:
        result.get(timeout=300, propagate=False)
    ids = [result.id for result in results]

    def all_ended() -> dict[str, ProgressSession]:
        sessions = _sessions(project, ids)
        assert all(session.state.status in TERMINAL_STATUSES for session in sessions.values())
        return sessions

    sessions = eventually(all_ended, timeout_s=60, what="every session's end")
    for result in results:
        state = sessions[result.id].state
        if result.successful():
            assert isinstance(state, Completed), state
            assert state.result_summary == "3"
        else:
            assert isinstance(state, Failed), state
            assert state.error_code == "ValueError"


@pytest.mark.parametrize("kind", STORES)
def test_a_worker_stopped_right_after_its_tasks_leaves_every_session_completed(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    projects: list[tuple[Project, list[Worker]]],
) -> None:
    # A wide window: the tasks' last updates are still held when the worker stops.
    project = _project(kind, tmp_path, request, projects, window_ms=1000)
    results = [project.count.delay(5, 0.01) for _ in range(STOPPED_TASKS)]
    assert [result.get(timeout=120) for result in results] == [5] * STOPPED_TASKS

    worker = projects[-1][1][0]
    worker.stop()  # SIGTERM: a warm shutdown
    assert worker.process.returncode == 0, worker.log_tail()

    for session in _sessions(project, [result.id for result in results]).values():
        assert isinstance(session.state, Completed), session.state
        assert session.state.result_summary == "5"


@pytest.mark.parametrize("kind", STORES)
def test_a_client_that_exits_right_after_delay_leaves_its_sessions_created(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres = request.getfixturevalue("postgres_schema") if "postgresql" in kind else None
    config = project_config(kind, tmp_path, postgres=postgres)
    env = {**os.environ, **config.env(), "PYTHONPATH": str(ROOT)}
    before = datetime.now(UTC)
    client = subprocess.run(
        [sys.executable, "-c", CLIENT.format(tasks=STOPPED_TASKS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ids = client.stdout.split()
    assert len(ids) == STOPPED_TASKS

    project = make_project(config)  # another process, reading the store
    try:
        for session in _sessions(project, ids).values():
            assert session.status == "initializing"
            assert before <= session.created_at <= datetime.now(UTC)
    finally:
        close_project(project)
