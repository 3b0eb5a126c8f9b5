"""``/celery-progress/<id>/stream/`` and ``g/<id>/stream/`` on the dashboard.

The streams run through a real uvicorn server (SSE needs a socket); what
they send is compared with what the polling endpoint answers over HTTP.
The answers' own rules are tested in tests/monitor/test_compat_stream.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.backends.filesystem import FilesystemBackend
from starlette.testclient import TestClient

from celery_progress_mcp import InProgress, ProgressTracker, SubOperation
from celery_progress_mcp.web import create_app

from .conftest import TOKEN
from .server import serving
from .sse import Frame, frames

#: Guards a hung stream; no assertion depends on it.
READ_TIMEOUT_S = 20.0
#: The listed origin of the CORS tests.
ORIGIN = "https://app.example.com"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT_S)) as client:
        yield client


@pytest.fixture
def celery_app(tmp_path: Path) -> Celery:
    return Celery("stream", broker="memory://", backend=f"file://{tmp_path}")


def _without_subs(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "sub_operations"}


def test_a_task_stream_sends_the_polling_answers_until_the_task_ends(
    tracker: ProgressTracker, http: httpx.Client
) -> None:
    task_id = tracker.create_session("staged", session_id="task-1")
    tracker.add_sub_operations(task_id, [SubOperation(id="load", name="Load")])
    tracker.start_sub_operation(task_id, "load")
    with serving(create_app(tracker)) as url:
        polled = http.get(f"{url}/celery-progress/{task_id}/").json()
        with http.stream("GET", f"{url}/celery-progress/{task_id}/stream/") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["x-accel-buffering"] == "no"
            stream = frames(response)
            first = next(stream)
            finish = threading.Thread(target=_finish, args=(tracker, task_id), daemon=True)
            finish.start()
            rest = list(stream)  # the server ends the stream after the last answer
            finish.join()
        polled_at_end = http.get(f"{url}/celery-progress/{task_id}/").json()
    assert first.event == "progress"
    assert _without_subs(first.data) == polled
    assert first.data["sub_operations"] == [
        {"id": "load", "name": "Load", "status": "active", "percentage": 0.0}
    ]
    seen = [first, *rest]
    assert {frame.event for frame in seen} == {"progress"}
    assert _without_subs(seen[-1].data) == polled_at_end
    assert seen[-1].data["complete"] is True
    assert seen[-1].data["sub_operations"][0]["status"] == "completed"
    percents = [frame.data["progress"]["percent"] for frame in seen]
    assert percents == sorted(percents)


def _finish(tracker: ProgressTracker, task_id: str) -> None:
    tracker.update_sub_operation(task_id, "load", percentage=50)
    tracker.complete_sub_operation(task_id, "load")
    tracker.complete_session(task_id, "loaded")


def test_a_group_stream_sends_the_group_answer(
    tracker: ProgressTracker, celery_app: Celery, http: httpx.Client
) -> None:
    group_id = tracker.create_session("group", session_id="group-1")
    tracker.add_sub_operations(group_id, [SubOperation(id="m1", name="one")])
    tracker.start_sub_operation(group_id, "m1")
    with serving(create_app(tracker, celery_app=celery_app)) as url:
        polled = http.get(f"{url}/celery-progress/g/{group_id}/").json()
        with http.stream("GET", f"{url}/celery-progress/g/{group_id}/stream/") as response:
            stream = frames(response)
            first = next(stream)
            tracker.complete_sub_operation(group_id, "m1")
            tracker.complete_session(group_id)
            last: Frame = list(stream)[-1]
    assert _without_subs(first.data) == polled
    assert first.data["sub_operations"][0]["id"] == "m1"
    assert (last.data["complete"], last.data["success"]) == (True, True)


def test_an_untracked_task_is_read_from_its_backend(
    tracker: ProgressTracker, celery_app: Celery, http: httpx.Client
) -> None:
    celery_app.backend.store_result("plain-1", {"rows": 3}, "SUCCESS")
    with (
        serving(create_app(tracker, celery_app=celery_app)) as url,
        http.stream("GET", f"{url}/celery-progress/plain-1/stream/") as response,
    ):
        seen = list(frames(response))
    assert [frame.event for frame in seen] == ["progress"]
    assert seen[0].data["result"] == {"rows": 3}
    assert seen[0].data["sub_operations"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/celery-progress/not%20an%20id/stream/",
        "/celery-progress/g/not.an.id/stream/",
        "/celery-progress/g/no-such-group/stream/",
    ],
)
def test_what_the_polling_endpoint_does_not_find_the_stream_does_not_find(
    tracker: ProgressTracker, path: str
) -> None:
    with TestClient(create_app(tracker), base_url="http://127.0.0.1") as client:
        polled = client.get(path.removesuffix("stream/"))
        streamed = client.get(path)
    assert streamed.status_code == polled.status_code == 404
    assert streamed.json() == polled.json()


def test_an_unreadable_backend_is_the_polling_endpoints_503(
    tracker: ProgressTracker, celery_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: Any, task_id: str, cache: bool = True) -> Any:
        raise ConnectionError("backend down")

    monkeypatch.setattr(FilesystemBackend, "get_task_meta", unreachable)
    with TestClient(create_app(tracker, celery_app=celery_app), base_url="http://127.0.0.1") as c:
        polled = c.get("/celery-progress/plain-2/")
        streamed = c.get("/celery-progress/plain-2/stream/")
    assert streamed.status_code == polled.status_code == 503
    assert streamed.json() == polled.json()


def test_a_stream_is_guarded_as_the_polling_endpoint(tracker: ProgressTracker) -> None:
    task_id = tracker.create_session("done", session_id="done-1")
    tracker.complete_session(task_id, "ok")
    app = create_app(tracker, token=TOKEN)
    path = f"/celery-progress/{task_id}/stream/"
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get(path).status_code == 401
        with client.stream("GET", path, headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
            assert answer.status_code == 200
            assert "event: progress" in answer.read().decode()


def test_listed_origins_may_read_the_stream_others_may_not(tracker: ProgressTracker) -> None:
    task_id = tracker.create_session("done", session_id="done-2")
    tracker.complete_session(task_id, "ok")
    app = create_app(tracker, cors_origins=[ORIGIN])
    path = f"/celery-progress/{task_id}/stream/"
    with TestClient(app, base_url="http://127.0.0.1") as client:
        listed = client.get(path, headers={"Origin": ORIGIN})
        other = client.get(path, headers={"Origin": "https://evil.example"})
    assert listed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in other.headers
    assert "Origin" in listed.headers["vary"]


def test_past_the_cap_a_stream_is_refused(tracker: ProgressTracker, http: httpx.Client) -> None:
    tracker.update_progress(
        tracker.create_session("held", session_id="held-1"), InProgress(percentage=5)
    )
    with serving(create_app(tracker, max_streams=1)) as url:
        with http.stream("GET", f"{url}/celery-progress/held-1/stream/") as held:
            stream = frames(held)  # kept: a reader dropped would close the connection
            next(stream)
            refused = http.get(f"{url}/celery-progress/held-1/stream/")
        assert refused.status_code == 503
        assert refused.json()["error"] == "too_many_streams"
        assert refused.headers["retry-after"]
