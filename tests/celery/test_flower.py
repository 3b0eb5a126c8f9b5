"""Flower shows tracked tasks truthfully: a real Flower, a real ``-E`` worker, on Redis.

One worker (prefork, one process, started with ``-E``; the integration's
events follow it, as in a real project) and one Flower for the module.
Flower listens on a Unix socket in the module's private directory, its API
open there without auth (``FLOWER_UNAUTHENTICATED_API``); it sends no
``enable_events`` to the broker (``--enable_events=False``), so the other
workers on a shared Redis are left alone. Everything is read through
Flower's HTTP API, as a user's script would. The last test needs no server:
Celery's event state, Flower's model of a task, on the events in order.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery.events.state import State
from celery.result import AsyncResult

from celery_progress_mcp import Cancelled
from celery_progress_mcp.celery.worker_runtime import TASK_PROGRESS_EVENT, TASK_REVOKED_EVENT
from celery_progress_mcp.testing import eventually
from tests.celery.conftest import close_project, project_config
from tests.celery.helpers import finished
from tests.celery.project import Project, make_project
from tests.celery.workers import ROOT, Worker, start_worker

#: Flower's start, from its process to knowing the worker, at most, in s.
FLOWER_START_S = 60.0
#: How long one request to Flower may take, in s.
REQUEST_TIMEOUT_S = 10.0


@dataclasses.dataclass
class Flower:
    """A Flower process and an HTTP client on its socket."""

    process: subprocess.Popen[bytes]
    client: httpx.Client
    log: Path

    def task(self, task_id: str) -> dict[str, Any]:
        """``/api/task/info/<id>``; LookupError while Flower has not seen the task."""
        response = self.client.get(f"/api/task/info/{task_id}")
        if response.status_code == 404:
            raise LookupError(f"Flower has not seen task {task_id}")
        response.raise_for_status()
        info: dict[str, Any] = response.json()
        return info

    def tasks(self, **query: str) -> dict[str, dict[str, Any]]:
        """``/api/tasks``, filtered as its query says."""
        response = self.client.get("/api/tasks", params=query)
        response.raise_for_status()
        listed: dict[str, dict[str, Any]] = response.json()
        return listed

    def wait_state(self, task_id: str, state: str) -> dict[str, Any]:
        """The task's info once Flower has it in ``state``."""

        def reached() -> dict[str, Any]:
            info = self.task(task_id)
            assert info["state"] == state, f"Flower has it {info['state']}"
            return info

        return eventually(reached, what=f"task {task_id} {state} in Flower")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_flower(project: Project, directory: Path) -> Flower:
    """``celery -A <the project> flower`` on a Unix socket, once it answers."""
    socket_path = directory / "flower.sock"
    log = directory / "flower.log"
    env = {
        **os.environ,
        **project.config.env(),
        "PYTHONPATH": str(ROOT),
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.celery.worker_app",
        "flower",
        f"--unix_socket={socket_path}",
        "--persistent=False",
        "--enable_events=False",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    client = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(socket_path)),
        base_url="http://flower",
        timeout=REQUEST_TIMEOUT_S,
    )
    flower = Flower(process, client, log)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"Flower exited at start:\n{flower.log_tail()}")
        try:
            return client.get("/healthcheck").status_code == 200
        except httpx.TransportError as exc:
            raise AssertionError(f"Flower does not answer yet: {exc}") from exc

    try:
        eventually(answers, timeout_s=FLOWER_START_S, interval_s=0.2, what="Flower's start")
    except AssertionError:
        flower.stop()
        raise
    return flower


def knows_worker(flower: Flower, worker: Worker) -> bool:
    """Flower has had an event of ``worker``: its event stream reaches Flower."""
    response = flower.client.get("/workers", params={"json": "1"})
    response.raise_for_status()
    return any(info.get("hostname") == worker.name for info in response.json()["data"])


@pytest.fixture(scope="module")
def flowered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Flower]]:
    directory = tmp_path_factory.mktemp("flower")
    # task_events False: the integration's events follow the worker's -E.
    config = dataclasses.replace(project_config("redis-sqlite", directory), task_events=False)
    project = make_project(config)
    flower = start_flower(project, directory)
    try:
        worker = start_worker(project, directory, concurrency=1, options=["-E"])
    except BaseException:
        flower.stop()
        close_project(project)
        raise
    try:
        eventually(
            lambda: knows_worker(flower, worker),
            timeout_s=FLOWER_START_S,
            interval_s=0.2,
            what="Flower knowing the worker",
        )
        yield project, flower
    finally:
        worker.stop()
        flower.stop()
        close_project(project)


@contextlib.contextmanager
def terminated_on_failure(result: AsyncResult) -> Iterator[None]:
    """A task that runs until stopped is stopped if the test fails: the next needs the worker."""
    try:
        yield
    except BaseException:
        result.revoke(terminate=True)
        raise


def progress_of(info: dict[str, Any]) -> dict[str, Any]:
    """The progress Flower shows as a running task's result."""
    shown = info.get("result")
    assert isinstance(shown, str), f"no progress in Flower's result: {shown!r}"
    progress: dict[str, Any] = ast.literal_eval(shown)
    return progress


def test_a_completed_task_is_success_with_its_result(flowered: tuple[Project, Flower]) -> None:
    project, flower = flowered
    result = project.count.delay(20, 0.05)  # long enough for progress events
    info = flower.wait_state(result.id, "SUCCESS")
    assert info["result"] == "20"  # the return value replaced the progress
    assert info["runtime"] > 0


def test_a_failed_task_is_failure(flowered: tuple[Project, Flower]) -> None:
    project, flower = flowered
    result = project.fail.delay()
    info = flower.wait_state(result.id, "FAILURE")
    assert "this task fails on purpose" in info["exception"]


def test_a_running_task_is_started_with_its_progress_until_cancelled_cooperatively(
    flowered: tuple[Project, Flower],
) -> None:
    project, flower = flowered
    result = project.endless.delay()

    def listed_started() -> dict[str, Any]:
        listed = flower.tasks(state="STARTED")  # Flower's "Started" filter
        info = listed[result.id]
        assert progress_of(info)["step"] == "looping"
        return info

    def moved_on_from(first: dict[str, Any]) -> dict[str, Any]:
        info = flower.task(result.id)
        assert progress_of(info)["percent"] > progress_of(first)["percent"]
        return info

    with terminated_on_failure(result):
        first = eventually(listed_started, what="the task listed as started, with its progress")
        later = eventually(lambda: moved_on_from(first), what="its progress moving on in Flower")
        assert later["state"] == "STARTED"
        assert later["started"] == first["started"]  # Celery's start time, not the last update's
        page = flower.client.get(f"/task/{result.id}")
        assert 'id="task-terminate"' in page.text  # the task page offers Terminate
        project.tracker.cancel_session(result.id, "the user changed their mind", revoke=True)
        flower.wait_state(result.id, "REVOKED")
    assert isinstance(finished(project.tracker, result.id).state, Cancelled)
    assert AsyncResult(result.id, app=project.app).state == "REVOKED"


def test_a_terminated_task_is_revoked(flowered: tuple[Project, Flower], tmp_path: Path) -> None:
    project, flower = flowered
    # It reports once, then sleeps: only terminate stops it, not its next update.
    result = project.hang.delay(str(tmp_path / "pid"))

    def started_hanging() -> bool:
        info = flower.task(result.id)
        assert info["state"] == "STARTED"
        return bool(progress_of(info)["step"] == "hanging")

    with terminated_on_failure(result):
        eventually(started_hanging, what="the task started, with its progress, in Flower")
    project.tracker.cancel_session(result.id, "stop it now", terminate=True)
    flower.wait_state(result.id, "REVOKED")  # in its sleep: Celery's task-revoked, terminated
    session = finished(project.tracker, result.id)
    assert isinstance(session.state, Cancelled)


def test_celery_event_state_keeps_the_progress_event_started_until_the_task_ends() -> None:
    """Without servers: what Celery's event state (Flower's model) makes of the events."""
    state = State()
    clock = iter(range(1, 100))

    def event(task_id: str, event_type: str, **fields: Any) -> None:
        timestamp = float(next(clock))
        state.event(
            {"type": event_type, "uuid": task_id, "hostname": "w@h", "timestamp": timestamp,
             "local_received": timestamp, "clock": int(timestamp), **fields}
        )  # fmt: skip

    for task_id in ("revoked", "succeeded"):
        event(task_id, "task-received", name="tasks.t")
        event(task_id, "task-started")
        started = state.tasks[task_id].started
        event(task_id, TASK_PROGRESS_EVENT, percent=40.0, result="{'percent': 40.0}")
        task = state.tasks[task_id]
        assert (task.state, task.started, task.result) == ("STARTED", started, "{'percent': 40.0}")
    event("revoked", TASK_REVOKED_EVENT, terminated=False, signum=None, expired=False)
    assert state.tasks["revoked"].state == "REVOKED"
    event("succeeded", "task-succeeded", result="'done'", runtime=1.5)
    assert (state.tasks["succeeded"].state, state.tasks["succeeded"].result) == (
        "SUCCESS",
        "'done'",
    )
