"""Every JSON endpoint, with authentication off and on (the ``auth_mode`` fixture)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from celery_progress_mcp import InProgress, ProgressTracker

from .conftest import CSRF, HOSTILE_STEP, TOKEN, Sessions

# -- /api/sessions ---------------------------------------------------------------


def test_list_is_newest_first_with_total(client: TestClient, sessions: Sessions) -> None:
    page = client.get("/api/sessions").json()
    assert page["total"] == 7
    assert (page["limit"], page["offset"]) == (50, 0)
    assert [row["id"] for row in page["sessions"]] == [
        sessions.group,
        sessions.initializing,
        sessions.cancelled,
        sessions.failed,
        sessions.completed,
        sessions.paused,
        sessions.running,
    ]


def test_list_row_carries_what_the_table_shows(client: TestClient, sessions: Sessions) -> None:
    rows = {row["id"]: row for row in client.get("/api/sessions").json()["sessions"]}
    running = rows[sessions.running]
    assert running["status"] == "in_progress"
    assert running["percentage"] == 42.5
    assert running["current_step"] == HOSTILE_STEP
    assert (running["current_step_number"], running["total_steps"]) == (3, 8)
    assert running["worker"] == "celery@alpha"
    assert running["active"] is True
    assert rows[sessions.failed]["message"] == "ENOSPC: disk full"
    assert rows[sessions.paused]["message"] == "waiting for a GPU"
    assert rows[sessions.completed]["message"] == "100 rows"
    assert rows[sessions.completed]["active"] is False
    assert rows[sessions.group]["sub_operation_count"] == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", {"failed"}),
        ("status=failed&status=cancelled", {"failed", "cancelled"}),
        ("status=failed,cancelled", {"failed", "cancelled"}),
        ("operation_id=report", {"failed", "cancelled"}),
        ("q=ML_TRAIN", {"paused"}),
        ("q=file&status=completed", {"completed"}),
    ],
)
def test_list_filters(
    client: TestClient, sessions: Sessions, query: str, expected: set[str]
) -> None:
    page = client.get(f"/api/sessions?{query}").json()
    by_id = {getattr(sessions, name): name for name in expected}
    assert {row["id"] for row in page["sessions"]} == set(by_id)
    assert page["total"] == len(expected)


def test_search_matches_the_session_id(client: TestClient, sessions: Sessions) -> None:
    fragment = sessions.failed[:13].upper()
    ids = [row["id"] for row in client.get(f"/api/sessions?q={fragment}").json()["sessions"]]
    assert ids == [sessions.failed]


def test_list_pagination_walks_every_session_once(client: TestClient, sessions: Sessions) -> None:
    seen: list[str] = []
    for offset in range(0, 7, 3):
        page = client.get(f"/api/sessions?limit=3&offset={offset}").json()
        assert page["total"] == 7
        seen.extend(row["id"] for row in page["sessions"])
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=x", "offset=-1", "status=running", "q=%00", "offset=1e3"],
)
def test_list_refuses_bad_parameters(client: TestClient, sessions: Sessions, query: str) -> None:
    response = client.get(f"/api/sessions?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# -- /api/sessions/{id} and its events ---------------------------------------------


def test_session_detail(client: TestClient, sessions: Sessions) -> None:
    body = client.get(f"/api/sessions/{sessions.group}").json()
    assert body["id"] == sessions.group
    assert [sub["id"] for sub in body["sub_operations"]] == ["load", "train", "eval"]
    assert [sub["state"] for sub in body["sub_operations"]] == ["completed", "active", "pending"]
    assert body["percentage"] == pytest.approx((100 + 3 * 50 + 0) / 5)
    assert body["state"]["status"] == "in_progress"
    assert len(body["history"]) >= 2


def test_unknown_session_is_404(client: TestClient, sessions: Sessions) -> None:
    for path in ("/api/sessions/nope", "/api/sessions/nope/events"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "session_not_found"


def test_session_id_with_a_slash(client: TestClient, tracker: ProgressTracker) -> None:
    session_id = tracker.create_session("odd", session_id="tenant/42")
    assert client.get(f"/api/sessions/{quote(session_id, safe='')}").json()["id"] == session_id
    assert client.get("/api/sessions/tenant/42/events").status_code == 200


def test_session_events_page_on(client: TestClient, sessions: Sessions) -> None:
    first = client.get(f"/api/sessions/{sessions.group}/events?limit=2").json()
    assert len(first["events"]) == 2
    assert first["events"][0]["event_type"] == "SessionCreated"
    rest = client.get(f"/api/sessions/{sessions.group}/events?since={first['next_since']}").json()
    seqs = [e["seq"] for e in first["events"] + rest["events"]]
    assert seqs == sorted(seqs)
    assert {e["session_id"] for e in rest["events"]} == {sessions.group}
    assert rest["events"][-1]["data"]["sub_operation_percentage"] == 50


# -- /api/stats ---------------------------------------------------------------------


def test_stats(client: TestClient, sessions: Sessions) -> None:
    stats = client.get("/api/stats").json()
    assert stats["active_sessions"] == 4
    assert stats["sessions_by_state"] == {
        "initializing": 1,
        "in_progress": 2,
        "paused": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert stats["total_created"] == 7
    assert stats["completion_rate"] == pytest.approx(1 / 3)
    assert stats["failure_rate"] == pytest.approx(1 / 3)


# -- actions ---------------------------------------------------------------------------


def test_pause_resume_cancel(
    client: TestClient, tracker: ProgressTracker, sessions: Sessions
) -> None:
    base = f"/api/sessions/{sessions.running}"
    paused = client.post(f"{base}/pause", headers=CSRF, json={"reason": "lunch"})
    assert paused.status_code == 200
    assert paused.json()["session"]["status"] == "paused"
    assert tracker.get_session(sessions.running).state.reason == "lunch"  # type: ignore[union-attr]
    resumed = client.post(f"{base}/resume", headers=CSRF)
    assert resumed.json()["session"]["status"] == "in_progress"
    cancelled = client.post(f"{base}/cancel", headers=CSRF)
    assert cancelled.status_code == 200
    assert tracker.get_session(sessions.running).status == "cancelled"


def test_refused_moves_are_409(client: TestClient, sessions: Sessions) -> None:
    for path in (
        f"/api/sessions/{sessions.completed}/cancel",
        f"/api/sessions/{sessions.running}/resume",
        f"/api/sessions/{sessions.paused}/pause",
    ):
        response = client.post(path, headers=CSRF)
        assert response.status_code == 409, path
        assert response.json()["error"] == "invalid_transition"


def test_actions_on_unknown_session_are_404(client: TestClient, sessions: Sessions) -> None:
    assert client.post("/api/sessions/nope/cancel", headers=CSRF).status_code == 404


@pytest.mark.parametrize("body", ['{"reason": 5}', "[1]", "not json", '{"other": 1}'])
def test_bad_action_body_is_400_and_changes_nothing(
    client: TestClient, tracker: ProgressTracker, sessions: Sessions, body: str
) -> None:
    response = client.post(
        f"/api/sessions/{sessions.running}/cancel",
        headers={**CSRF, "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 400
    assert tracker.get_session(sessions.running).status == "in_progress"


def test_cancel_uses_the_given_hook(tracker: ProgressTracker, sessions: Sessions) -> None:
    from celery_progress_mcp.web import create_app

    calls: list[tuple[str, str]] = []

    def cancel(session_id: str, reason: str) -> None:
        calls.append((session_id, reason))
        tracker.cancel_session(session_id, reason)

    with TestClient(create_app(tracker, cancel=cancel), base_url="http://127.0.0.1") as client:
        client.post(f"/api/sessions/{sessions.running}/cancel", headers=CSRF)
    assert calls == [(sessions.running, "cancelled from the dashboard")]


# -- celery-progress ---------------------------------------------------------------------


def test_celery_progress_running(client: TestClient, sessions: Sessions) -> None:
    body = client.get(f"/celery-progress/{sessions.running}/").json()
    assert body == {  # no "result" while running, as celery-progress
        "state": "PROGRESS",
        "complete": False,
        "success": None,
        "progress": {
            "pending": False,
            "current": 3.0,
            "total": 8.0,
            "percent": 42.5,
            "description": HOSTILE_STEP,
        },
    }


def test_celery_progress_unknown_task_is_pending(client: TestClient, sessions: Sessions) -> None:
    body = client.get("/celery-progress/0b7a6f3e-not-dispatched-yet/").json()
    assert body["state"] == "PENDING"
    assert body["complete"] is False
    assert body["progress"] == {"pending": True, "current": 0, "total": 100, "percent": 0}


def test_celery_progress_group(client: TestClient, sessions: Sessions) -> None:
    body = client.get(f"/celery-progress/g/{sessions.group}/").json()
    assert body == {
        "complete": False,
        "success": False,
        "progress": {"total": 300.0, "current": 150.0, "percent": 50.0},
    }


# -- OpenAPI and metrics ----------------------------------------------------------------


def test_openapi_describes_every_api_route(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/events",
        "/api/sessions/{session_id}/cancel",
        "/api/sessions/{session_id}/pause",
        "/api/sessions/{session_id}/resume",
        "/api/stats",
        "/api/events",
        "/metrics",
        "/celery-progress/{task_id}/",
        "/celery-progress/g/{group_id}/",
        "/celery-progress/{task_id}/stream/",
        "/celery-progress/g/{group_id}/stream/",
    }
    assert "SessionDetail" in document["components"]["schemas"]


def test_metrics_endpoint(client: TestClient, tracker: ProgressTracker, sessions: Sessions) -> None:
    tracker.update_progress(sessions.running, InProgress(percentage=50))
    tracker.complete_session(sessions.running)
    text = client.get("/metrics").text
    logged = tracker.store.events_since(0, limit=10_000)
    updates = sum(event.event_type == "ProgressUpdated" for event in logged)
    assert 'celery_progress_sessions{state="in_progress"} 1.0' in text
    assert 'celery_progress_sessions{state="completed"} 2.0' in text
    assert 'celery_progress_active_sessions{operation="ml_training"} 1.0' in text
    assert f"celery_progress_process_updates_total {float(updates)}" in text
    assert 'celery_progress_process_events_total{event_type="SessionCompleted"} 2.0' in text
    assert "celery_progress_session_duration_seconds_count 2.0" in text
    assert "celery_progress_store_up 1.0" in text


# -- authentication on: nothing without credentials ---------------------------------------

_GUARDED = [
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/x"),
    ("GET", "/api/sessions/x/events"),
    ("GET", "/api/stats"),
    ("GET", "/api/events"),
    ("GET", "/api/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/celery-progress/x/"),
    ("GET", "/celery-progress/g/x/"),
    ("GET", "/celery-progress/x/stream/"),
    ("GET", "/celery-progress/g/x/stream/"),
    ("POST", "/api/sessions/x/cancel"),
    ("POST", "/api/sessions/x/pause"),
    ("POST", "/api/sessions/x/resume"),
]


@pytest.mark.parametrize(("method", "path"), _GUARDED)
@pytest.mark.parametrize("auth_mode", ["token"])
def test_token_required(anonymous: TestClient, method: str, path: str) -> None:
    response = anonymous.request(method, path, headers=CSRF)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    wrong = anonymous.request(method, path, headers={**CSRF, "Authorization": "Bearer wrong"})
    assert wrong.status_code == 401


@pytest.mark.parametrize("auth_mode", ["open"])
def test_open_app_answers_without_credentials(anonymous: TestClient, sessions: Sessions) -> None:
    assert anonymous.get("/api/sessions").status_code == 200
    assert anonymous.get("/metrics").status_code == 200


@pytest.mark.parametrize("auth_mode", ["token"])
def test_bearer_token_is_accepted(anonymous: TestClient, sessions: Sessions) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert anonymous.get("/api/sessions", headers=headers).status_code == 200
