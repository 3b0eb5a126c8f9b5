"""The include's URLs answer as celery-progress's views do, and bad input gets 404 or 405.

celery-progress's own app is included beside this one (``/celery-progress/``
and ``/progress/`` in :mod:`.site.urls`); a real worker runs the site's
tasks. Once a task has ended both views must give the same JSON, for a
tracked task, an untracked one, a failing one and a group; while it runs,
this one's answers come from its session.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import group
from django.test import Client
from starlette.testclient import TestClient

from celery_progress_mcp import InProgress
from celery_progress_mcp.django.runtime import runtime
from celery_progress_mcp.testing import eventually
from celery_progress_mcp.web import create_app

from .site import tasks

pytestmark = pytest.mark.django_db

#: Guard against a worker that never finishes, in seconds.
TASK_GUARD_S = 60.0


def _answer(client: Client, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.content)
    assert response["Content-Type"] == "application/json"
    answer: dict[str, Any] = response.json()
    return answer


def _complete(client: Client, url: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        answer = _answer(client, url)
        return answer if answer["complete"] else None

    found: dict[str, Any] = eventually(done, timeout_s=TASK_GUARD_S, what=f"{url} complete")
    return found


def _ended(session_id: str) -> Any:
    """The session once its end, written by the worker's writer after the result, is seen."""

    def completed() -> Any:
        session = runtime().tracker.get_session(session_id)
        return session if session.status == "completed" else None

    return eventually(completed, timeout_s=TASK_GUARD_S, what=f"{session_id} completed")


# GroupResult.save() on Redis: Celery calls a redis-py method that redis-py deprecates.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_every_url_answers_as_celery_progress_does(worker: Any) -> None:
    client = Client()
    tracked = tasks.tally.delay(rows=6, pause_s=0.05)
    untracked = tasks.plain_tally.delay(rows=4, pause_s=0.05)
    failing = tasks.broken.delay()
    members = group(tasks.tally.s(rows=3, pause_s=0.02) for _ in range(3)).apply_async()
    members.save()  # celery-progress reads a group from the backend only when saved

    # While it runs, the tracked task's answer is its session's (counts and step).
    running = _answer(client, f"/progress/{tracked.id}/")
    assert set(running) == {"state", "complete", "success", "progress"}
    assert set(running["progress"]) >= {"pending", "current", "total", "percent"}

    for kind, task_id in [
        ("tracked", tracked.id),
        ("untracked", untracked.id),
        ("failing", failing.id),
    ]:
        ours = _complete(client, f"/progress/{task_id}/")
        theirs = _complete(client, f"/celery-progress/{task_id}/")
        assert ours == theirs, kind
    assert _answer(client, f"/progress/{tracked.id}/")["result"] == {"processed": 6}
    _ended(tracked.id)
    assert _answer(client, f"/progress/{failing.id}/")["success"] is False

    ours = _complete(client, f"/progress/g/{members.id}/")
    theirs = _complete(client, f"/celery-progress/g/{members.id}/")
    assert {k: v for k, v in ours.items() if k != "result"} == theirs
    # One addition: the members' results, once every member is complete.
    assert ours["result"] == [{"processed": 3}] * 3


def test_a_shared_task_with_the_base_class_is_tracked(worker: Any) -> None:
    result = tasks.shared.delay(rows=5)
    assert result.get(timeout=TASK_GUARD_S) == 5
    session = _ended(result.id)
    assert session.operation_id == "djsite.shared"


def test_an_unknown_task_is_pending_as_there() -> None:
    client = Client()
    unknown = "0f6e3c3e-6f0e-4c0e-9d7e-unknown"
    assert _answer(client, f"/progress/{unknown}/") == _answer(
        client, f"/celery-progress/{unknown}/"
    )


def test_bad_input_gets_django_answers_never_a_500() -> None:
    client = Client(raise_request_exception=False)
    assert client.get("/progress/g/nothing-knows-this-group/").status_code == 404
    for malformed in [
        "/progress/a.b/",
        "/progress/%C3%BCber/",
        "/progress/a%00b/",
        "/progress/x/y/",
    ]:
        assert client.get(malformed).status_code == 404, malformed
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/progress/some-task/").status_code == 405, method
        assert getattr(client, method)("/progress/g/some-group/").status_code == 405, method


def test_unknown_sessions_and_wrong_methods_on_the_dashboard(admin_client: Client) -> None:
    admin_client.raise_request_exception = False
    for url in [
        "/progress/dashboard/sessions/nothing",
        "/progress/dashboard/sessions/nothing/history.svg",
        "/progress/api/sessions/nothing",
        "/progress/api/sessions/nothing/events",
        "/progress/dashboard/static/secrets.py",
    ]:
        assert admin_client.get(url).status_code == 404, url
    assert admin_client.get("/progress/api/sessions/nothing").json()["error"] == "session_not_found"
    cancel = admin_client.post("/progress/api/sessions/nothing/cancel", b"", "application/json")
    assert cancel.status_code == 404
    assert admin_client.get("/progress/api/sessions/x/cancel").status_code == 405
    assert admin_client.post("/progress/api/sessions").status_code == 405
    assert admin_client.post("/progress/dashboard/").status_code == 405
    for query in ("limit=0", "offset=", "limit=ten"):
        bad = admin_client.get(f"/progress/api/sessions?{query}")
        assert bad.status_code == 400, query
        assert bad.json()["error"] == "invalid_request"


def test_the_api_gives_the_starlette_dashboards_json(admin_client: Client) -> None:
    tracker = runtime().tracker
    session_id = tracker.tracker.create_session("report", {"rows": 10})
    tracker.tracker.update_progress(session_id, InProgress(percentage=70, current_step="sums"))
    tracker.tracker.complete_session(session_id, "10 rows")  # a fixed duration to compare
    tracker.flush()  # its history as the store holds it, for both to read
    with TestClient(create_app(tracker), base_url="http://127.0.0.1") as starlette:
        for path in [
            f"/api/sessions/{session_id}",
            f"/api/sessions/{session_id}/events?since=0",
            "/api/sessions?operation_id=report",
        ]:
            assert admin_client.get("/progress" + path).json() == starlette.get(path).json(), path
