"""Faults: a pool process or a whole worker killed, a task's end missing from the
store but known to the result backend, a task dispatched while the store is
down, a redelivered task, a Redis restart.

Each test starts its own workers (they get killed), with a private queue,
task-name prefix and SQLite store; the Redis restart uses a Redis server of
its own on a free port, so the shared one is never touched; the store outage
uses a PostgreSQL server of its own (tests/store/private_postgres.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from celery_progress_mcp import Completed, Failed, ProgressEvent
from celery_progress_mcp.celery.integration import integration_of
from celery_progress_mcp.testing import eventually
from tests.celery.conftest import project_config
from tests.celery.helpers import finished, wait_status
from tests.celery.project import Project, make_project
from tests.celery.workers import Worker, start_worker
from tests.store.private_postgres import PrivatePostgres

#: The heartbeat timeout of the whole-worker test: small, so the test is short.
HEARTBEAT_TIMEOUT_S = 3.0


def _marker_pid(path: Path) -> int:
    found = eventually(lambda: path.exists() and path.read_text(), timeout_s=30, what=f"{path}")
    return int(str(found))


def test_sigkill_of_a_pool_process_fails_only_its_session(
    tmp_path: Path, projects: list[tuple[Project, list[Worker]]]
) -> None:
    project = make_project(project_config("redis-sqlite", tmp_path))
    worker = start_worker(project, tmp_path, concurrency=2)
    projects.append((project, [worker]))
    victim = project.hang.delay(str(tmp_path / "victim"))
    bystander = project.hang.delay(str(tmp_path / "bystander"))
    victim_pid = _marker_pid(tmp_path / "victim")
    _marker_pid(tmp_path / "bystander")
    wait_status(project.tracker, victim.id, "in_progress")
    wait_status(project.tracker, bystander.id, "in_progress")

    os.kill(victim_pid, signal.SIGKILL)

    session = finished(project.tracker, victim.id)
    assert isinstance(session.state, Failed)
    assert session.state.error_code == "WORKER_LOST"
    assert project.tracker.get_session(bystander.id).state.status == "in_progress"
    bystander.revoke(terminate=True)
    finished(project.tracker, bystander.id)


def test_sigkill_of_the_whole_worker_fails_its_sessions_after_the_heartbeat_timeout(
    tmp_path: Path, projects: list[tuple[Project, list[Worker]]]
) -> None:
    config = project_config("redis-sqlite", tmp_path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)
    project = make_project(config)
    worker = start_worker(project, tmp_path, concurrency=2)
    projects.append((project, [worker]))
    results = [project.hang.delay(str(tmp_path / f"hang{i}")) for i in range(2)]
    for index, result in enumerate(results):
        _marker_pid(tmp_path / f"hang{index}")
        wait_status(project.tracker, result.id, "in_progress")

    worker.kill()  # the worker and its pool processes, as a machine that went away
    last_heartbeats = {r.id: project.tracker.get_session(r.id).heartbeat_at for r in results}
    integration = integration_of(project.app)
    assert integration is not None
    integration.liveness.start()  # this process is the monitor

    for result in results:
        session = finished(project.tracker, result.id, timeout_s=60)
        assert isinstance(session.state, Failed)
        assert session.state.error_code == "WORKER_LOST"
        assert "no heartbeat" in session.state.error_message
        last_alive = last_heartbeats[result.id]
        assert last_alive is not None
        # Never failed early: only once silent for the whole timeout.
        assert session.state.failed_at - last_alive >= timedelta(seconds=HEARTBEAT_TIMEOUT_S)


def test_a_silent_task_whose_end_the_result_backend_has_ends_so_not_worker_lost(
    tmp_path: Path, projects: list[tuple[Project, list[Worker]]]
) -> None:
    # The tasks' ends are written in the backend by hand after their worker is gone:
    # as if the worker had ended them but the store had missed it.
    config = project_config("redis-sqlite", tmp_path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)
    project = make_project(config)
    worker = start_worker(project, tmp_path, concurrency=3)
    projects.append((project, [worker]))
    succeeded, failed, lost = (project.hang.delay(str(tmp_path / f"hang{i}")) for i in range(3))
    for index, result in enumerate((succeeded, failed, lost)):
        _marker_pid(tmp_path / f"hang{index}")
        wait_status(project.tracker, result.id, "in_progress")

    worker.kill()
    project.app.backend.mark_as_done(succeeded.id, {"rows": 12})
    project.app.backend.mark_as_failure(failed.id, KeyError("row 7"))
    integration = integration_of(project.app)
    assert integration is not None
    integration.liveness.start()

    done = finished(project.tracker, succeeded.id, timeout_s=60)
    assert isinstance(done.state, Completed)
    assert done.state.result_summary == "{'rows': 12}"
    assert done.metadata["celery_ended_from"] == "result_backend"
    error = finished(project.tracker, failed.id, timeout_s=60).state
    assert isinstance(error, Failed)
    assert (error.error_code, error.error_message) == ("KeyError", "'row 7'")
    gone = finished(project.tracker, lost.id, timeout_s=60).state
    assert isinstance(gone, Failed)
    assert gone.error_code == "WORKER_LOST"  # the backend knows nothing of it


def test_store_down_and_worker_stopped_the_session_ends_as_the_result_backend_says(
    tmp_path: Path, projects: list[tuple[Project, list[Worker]]]
) -> None:
    # The compound fault: PostgreSQL down while the task ends, the worker
    # stopped (SIGTERM) meanwhile: its end's write is lost with it, the backend has it.
    server = PrivatePostgres()
    server.start()
    try:
        config = project_config("redis-sqlite", tmp_path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)
        config = type(config)(**{**config.__dict__, "store": server.url})
        project = make_project(config)
        worker = start_worker(project, tmp_path, concurrency=1)
        projects.append((project, [worker]))
        result = project.hang.delay(str(tmp_path / "hang"), 1.0)
        wait_status(project.tracker, result.id, "in_progress")

        server.stop()
        assert result.get(timeout=60) == "woke up"
        worker.stop()
        server.start()

        integration = integration_of(project.app)
        assert integration is not None
        integration.liveness.start()
        session = finished(project.tracker, result.id, timeout_s=60)
        assert isinstance(session.state, Completed), session.state
        assert session.state.result_summary == "'woke up'"
    finally:
        server.close()


def test_a_task_dispatched_while_the_store_is_down_keeps_its_dispatch_time(
    tmp_path: Path, projects: list[tuple[Project, list[Worker]]]
) -> None:
    server = PrivatePostgres()
    server.start()
    try:
        config = project_config("redis-sqlite", tmp_path)
        config = type(config)(**{**config.__dict__, "store": server.url})
        project = make_project(config)
        worker = start_worker(project, tmp_path, concurrency=1)
        projects.append((project, [worker]))
        server.stop()

        before = datetime.now(UTC)
        result = project.count.apply_async((3, 0.0), countdown=1.0)
        sent = datetime.now(UTC)
        assert result.get(timeout=60) == 3  # started and ended while the store is down
        server.start()

        session = finished(project.tracker, result.id, timeout_s=90)
        assert isinstance(session.state, Completed)
        assert before <= session.created_at <= sent  # not its start, a second later
    finally:
        server.close()


def test_a_redelivered_acks_late_task_continues_its_session(
    tmp_path: Path, projects: list[tuple[Project, list[Worker]]]
) -> None:
    # RabbitMQ gives an unacknowledged message back as soon as its consumer is gone.
    project = make_project(project_config("rabbitmq-sqlite", tmp_path))
    first = start_worker(project, tmp_path, concurrency=1, tag="first")
    projects.append((project, [first]))
    marker = tmp_path / "resumable"
    result = project.resumable.delay(str(marker), 10)
    _marker_pid(marker)
    eventually(
        lambda: project.tracker.get_session(result.id).percentage >= 50.0,
        timeout_s=30,
        what="half the first run",
    )

    first.kill()
    second = start_worker(project, tmp_path, concurrency=1, tag="second")
    projects[-1][1].append(second)

    assert result.get(timeout=60) == "resumed"
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Completed)
    assert session.metadata["celery_redelivered"] is True
    statuses = [str(snap.state.status) for snap in session.history]
    assert statuses.count("initializing") == 1
    reached = [getattr(snap.state, "percentage", None) or 0.0 for snap in session.history]
    assert max(reached[: reached.index(100.0)]) >= 50.0  # the first run's progress is kept
    runs = project.tracker.list_sessions(operation_id=project.resumable.name)
    assert [run.id for run in runs] == [result.id]  # one session, not one per delivery


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs a server: redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    eventually(answers, timeout_s=30, what=f"redis on port {port}")
    return process


def test_a_redis_restart_mid_run_loses_no_event_and_no_final_state(
    tmp_path: Path, projects: list[tuple[Project, list[Worker]]]
) -> None:
    port = _free_port()
    redis = _start_redis(port, tmp_path)
    try:
        config = project_config("redis-sqlite", tmp_path)
        config = type(config)(**{**config.__dict__, "broker": f"redis://127.0.0.1:{port}/0"})
        project = make_project(config)
        worker = start_worker(project, tmp_path, concurrency=2)
        projects.append((project, [worker]))
        subscription = project.tracker.subscribe_to_events()
        results = [project.count.delay(80, 0.05) for _ in range(2)]
        for result in results:
            wait_status(project.tracker, result.id, "in_progress")

        before = {
            result.id: project.tracker.get_session(result.id).percentage for result in results
        }
        redis.kill()
        redis.wait(10)

        def reported_while_down() -> bool:
            return all(
                project.tracker.get_session(result.id).percentage > before[result.id]
                for result in results
            )

        # The broker is down while the tasks report progress.
        eventually(reported_while_down, timeout_s=30)
        redis = _start_redis(port, tmp_path)

        for result in results:
            session = finished(project.tracker, result.id, timeout_s=90)
            assert isinstance(session.state, Completed)
        events: list[ProgressEvent] = []

        def both_completed() -> bool:
            while (event := subscription.get_nowait()) is not None:
                events.append(event)
            done = {e.session_id for e in events if e.event_type == "SessionCompleted"}
            return done >= {result.id for result in results}

        eventually(both_completed, timeout_s=60)
        subscription.close()
        seqs = [event.seq for event in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # resumed, with no gap
    finally:
        redis.send_signal(signal.SIGTERM)
        redis.wait(10)
