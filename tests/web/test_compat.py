"""``/celery-progress/...`` for any id, as celery-progress's own views answer.

celery-progress 0.5 (``backend.py``: ``Progress.get_info``,
``GroupProgress``; ``views.py``) reads every id from the result backend.
Here the backend is Celery's ``file://`` one (no server); the states are
written with ``store_result`` as a worker writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.backends.filesystem import FilesystemBackend
from celery.exceptions import Retry, TaskRevokedError
from starlette.testclient import TestClient

from celery_progress_mcp import InProgress, ProgressTracker, SubOperation
from celery_progress_mcp.celery.metadata_keys import KIND, KIND_GROUP
from celery_progress_mcp.web import create_app

COMPLETED_PROGRESS = {"pending": False, "current": 100, "total": 100, "percent": 100}


@pytest.fixture
def celery_app(tmp_path: Path) -> Celery:
    app = Celery("compat", broker="memory://", backend=f"file://{tmp_path}")
    app.conf.result_serializer = "pickle"  # a result JSON cannot carry, as pickle allows
    app.conf.accept_content = ["json", "pickle"]
    app.conf.result_accept_content = ["json", "pickle"]
    return app


@pytest.fixture
def client(tracker: ProgressTracker, celery_app: Celery) -> Iterator[TestClient]:
    app = create_app(tracker, celery_app=celery_app)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def _get(client: TestClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"  # celery-progress's never_cache
    return response.json()


# -- an id with no session: the result backend, as celery-progress reads it ----------------


def test_progress_meta_from_update_state_is_passed_on(
    client: TestClient, celery_app: Celery
) -> None:
    meta = {"pending": False, "current": 5, "total": 20, "percent": 25.0, "description": "rows"}
    celery_app.backend.store_result("plain-1", meta, "PROGRESS")
    assert _get(client, "/celery-progress/plain-1/") == {
        "state": "PROGRESS",
        "complete": False,
        "success": None,
        "progress": meta,
    }


def test_success_carries_the_result_as_its_json_value(
    client: TestClient, celery_app: Celery
) -> None:
    celery_app.backend.store_result("plain-2", {"processed": 50, "files": ["a"]}, "SUCCESS")
    assert _get(client, "/celery-progress/plain-2/") == {
        "state": "SUCCESS",
        "complete": True,
        "success": True,
        "progress": COMPLETED_PROGRESS,
        "result": {"processed": 50, "files": ["a"]},
    }


@pytest.mark.parametrize(
    ("state", "stored", "success", "result"),
    [
        ("FAILURE", ValueError("boom"), False, "boom"),
        ("REVOKED", TaskRevokedError("revoked"), False, "Task revoked"),
        ("IGNORED", None, None, "None"),
    ],
)
def test_ended_states_read_as_celery_progress_reads_them(
    client: TestClient, celery_app: Celery, state: str, stored: Any, success: Any, result: Any
) -> None:
    celery_app.backend.store_result("plain-3", stored, state)
    assert _get(client, "/celery-progress/plain-3/") == {
        "state": state,
        "complete": True,
        "success": success,
        "progress": COMPLETED_PROGRESS,
        "result": result,
    }


def test_retry_says_when_the_next_attempt_runs(client: TestClient, celery_app: Celery) -> None:
    reason = Retry("the database is busy, try again in a moment please", when=7)
    traceback = "Traceback (most recent call last):\ncelery.exceptions.Retry: Retry in 7s"
    celery_app.backend.store_result("plain-4", reason, "RETRY", traceback=traceback)
    body = _get(client, "/celery-progress/plain-4/")
    assert body["state"] == "RETRY"
    assert (body["complete"], body["success"]) == (True, False)  # celery_progress.js polls on
    assert body["result"] == {
        "next_retry_seconds": 7,
        "message": f"{str(celery_app.backend.get_task_meta('plain-4')['result'])[:50]}...",
    }


@pytest.mark.parametrize(("state", "pending"), [("PENDING", True), ("STARTED", False)])
def test_waiting_states_have_unknown_progress(
    client: TestClient, celery_app: Celery, state: str, pending: bool
) -> None:
    if state != "PENDING":
        celery_app.backend.store_result("plain-5", None, state)
    assert _get(client, "/celery-progress/plain-5/") == {
        "state": state,
        "complete": False,
        "success": None,
        "progress": {"pending": pending, "current": 0, "total": 100, "percent": 0},
    }


def test_a_custom_state_is_an_unknown_state(client: TestClient, celery_app: Celery) -> None:
    celery_app.backend.store_result("plain-6", {"stage": "upload"}, "UPLOADING")
    assert _get(client, "/celery-progress/plain-6/") == {
        "state": "UPLOADING",
        "complete": True,
        "success": False,
        "progress": {"pending": False, "current": 0, "total": 100, "percent": 0},
        "result": "Unknown state UPLOADING",
    }


def test_a_result_json_cannot_carry_is_its_repr(client: TestClient, celery_app: Celery) -> None:
    celery_app.backend.store_result("plain-7", {1, 2}, "SUCCESS")
    assert _get(client, "/celery-progress/plain-7/")["result"] == "{1, 2}"


def test_an_unreadable_backend_is_a_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: Any, task_id: str, cache: bool = True) -> Any:
        raise ConnectionError("backend down")

    monkeypatch.setattr(FilesystemBackend, "get_task_meta", unreachable)
    response = client.get("/celery-progress/plain-8/")
    assert response.status_code == 503
    assert response.json()["error"] == "result_backend_unavailable"


def test_without_a_celery_app_an_unknown_id_is_pending(tracker: ProgressTracker) -> None:
    with TestClient(create_app(tracker), base_url="http://127.0.0.1") as client:
        assert _get(client, "/celery-progress/anything/")["state"] == "PENDING"


# -- a tracked task: its session, with the backend's result once it ends ------------------


def test_a_running_session_answers_with_its_progress(
    client: TestClient, tracker: ProgressTracker, celery_app: Celery
) -> None:
    tracker.create_session("import", session_id="tracked-1")
    tracker.update_progress("tracked-1", InProgress(percentage=40, current_step="row 4"))
    celery_app.backend.store_result("tracked-1", None, "STARTED")
    assert _get(client, "/celery-progress/tracked-1/") == {
        "state": "PROGRESS",
        "complete": False,
        "success": None,
        "progress": {
            "pending": False,
            "current": 40.0,
            "total": 100.0,
            "percent": 40.0,
            "description": "row 4",
        },
    }


def test_a_completed_session_takes_its_result_from_the_backend(
    client: TestClient, tracker: ProgressTracker, celery_app: Celery
) -> None:
    tracker.create_session("import", session_id="tracked-2")
    tracker.complete_session("tracked-2", "{'processed': 50}")
    celery_app.backend.store_result("tracked-2", {"processed": 50}, "SUCCESS")
    body = _get(client, "/celery-progress/tracked-2/")
    assert (body["state"], body["success"]) == ("SUCCESS", True)
    assert body["result"] == {"processed": 50}


@pytest.mark.parametrize("stored", ["nothing", "not json"])
def test_a_completed_session_falls_back_to_its_summary(
    client: TestClient, tracker: ProgressTracker, celery_app: Celery, stored: str
) -> None:
    """No result in the backend (``ignore_result``, expired) or none JSON can carry."""
    tracker.create_session("import", session_id="tracked-3")
    tracker.complete_session("tracked-3", "{1, 2}")
    if stored == "not json":
        celery_app.backend.store_result("tracked-3", {1, 2}, "SUCCESS")
    body = _get(client, "/celery-progress/tracked-3/")
    assert (body["state"], body["complete"], body["result"]) == ("SUCCESS", True, "{1, 2}")


def test_the_session_decides_how_a_tracked_task_ended(
    client: TestClient, tracker: ProgressTracker, celery_app: Celery
) -> None:
    """Failed by the liveness sweep while the backend still says STARTED: FAILURE."""
    tracker.create_session("import", session_id="tracked-4")
    tracker.fail_session("tracked-4", "the worker died", "WORKER_LOST")
    celery_app.backend.store_result("tracked-4", None, "STARTED")
    body = _get(client, "/celery-progress/tracked-4/")
    assert (body["state"], body["success"], body["result"]) == (
        "FAILURE",
        False,
        "the worker died",
    )


def test_a_failed_session_reads_the_backends_exception(
    client: TestClient, tracker: ProgressTracker, celery_app: Celery
) -> None:
    tracker.create_session("import", session_id="tracked-5")
    tracker.fail_session("tracked-5", "ValueError: boom", "ValueError")
    celery_app.backend.store_result("tracked-5", ValueError("boom"), "FAILURE")
    assert _get(client, "/celery-progress/tracked-5/")["result"] == "boom"


def test_a_tracked_task_survives_an_unreadable_backend(
    client: TestClient, tracker: ProgressTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: Any, task_id: str, cache: bool = True) -> Any:
        raise ConnectionError("backend down")

    tracker.create_session("import", session_id="tracked-6")
    tracker.complete_session("tracked-6", "42")
    monkeypatch.setattr(FilesystemBackend, "get_task_meta", unreachable)
    assert _get(client, "/celery-progress/tracked-6/")["result"] == "42"


# -- groups ---------------------------------------------------------------------------------


def test_a_saved_group_sums_its_members(client: TestClient, celery_app: Celery) -> None:
    members = [celery_app.AsyncResult(task_id) for task_id in ("m-1", "m-2", "m-3")]
    celery_app.GroupResult("plain-group", members).save()
    celery_app.backend.store_result("m-1", {"n": 1}, "SUCCESS")
    celery_app.backend.store_result("m-2", {"current": 3, "total": 4}, "PROGRESS")
    assert _get(client, "/celery-progress/g/plain-group/") == {
        "complete": False,
        "success": False,
        "progress": {"total": 204.0, "current": 103.0, "percent": 50.49},
    }
    celery_app.backend.store_result("m-2", [2], "SUCCESS")
    celery_app.backend.store_result("m-3", "three", "SUCCESS")
    assert _get(client, "/celery-progress/g/plain-group/") == {
        "complete": True,
        "success": True,
        "progress": {"total": 300.0, "current": 300.0, "percent": 100.0},
        "result": [{"n": 1}, [2], "three"],
    }


def test_an_unknown_group_is_a_404(client: TestClient) -> None:
    response = client.get("/celery-progress/g/never-saved/")
    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"


def test_a_tracked_group_reads_its_members_results_once_all_ended(
    client: TestClient, tracker: ProgressTracker, celery_app: Celery
) -> None:
    group = tracker.create_session("group", {KIND: KIND_GROUP}, session_id="tracked-group")
    tracker.add_sub_operations(group, [SubOperation(id=f"t-{n}", name="tally") for n in (1, 2)])
    tracker.start_sub_operation(group, "t-1")
    tracker.complete_sub_operation(group, "t-1")
    tracker.start_sub_operation(group, "t-2")
    tracker.update_sub_operation(group, "t-2", percentage=50)
    celery_app.backend.store_result("t-1", {"processed": 1}, "SUCCESS")
    assert _get(client, "/celery-progress/g/tracked-group/") == {
        "complete": False,
        "success": False,
        "progress": {"total": 200.0, "current": 150.0, "percent": 75.0},
    }
    tracker.complete_sub_operation(group, "t-2")
    celery_app.backend.store_result("t-2", {"processed": 2}, "SUCCESS")
    body = _get(client, "/celery-progress/g/tracked-group/")
    assert (body["complete"], body["success"]) == (True, True)
    assert body["result"] == [{"processed": 1}, {"processed": 2}]


def test_members_left_behind_end_with_their_group(
    client: TestClient, tracker: ProgressTracker
) -> None:
    """A cancelled group whose members were never told: the bar stops, it does not poll forever."""
    group = tracker.create_session("group", {KIND: KIND_GROUP}, session_id="cancelled-group")
    tracker.add_sub_operations(group, [SubOperation(id=f"c-{n}", name="tally") for n in (1, 2)])
    tracker.start_sub_operation(group, "c-1")
    tracker.cancel_session(group, "not needed")
    body = _get(client, "/celery-progress/g/cancelled-group/")
    assert (body["complete"], body["success"]) == (True, False)
    assert [text.startswith("Task revoked") for text in body["result"]] == [True, True]
