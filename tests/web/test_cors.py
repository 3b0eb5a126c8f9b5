"""CORS: the listed origins may read the read-only endpoints; nothing else, nothing by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from celery_progress_mcp import ConfigError, ProgressTracker
from celery_progress_mcp.cli import main
from celery_progress_mcp.web import create_app

from .conftest import CSRF, TOKEN, Sessions

PAGE = "http://127.0.0.1:8001"
ELSEWHERE = "https://evil.example"

_READABLE = [
    "/celery-progress/{id}/",
    "/celery-progress/g/{group}/",
    "/api/sessions",
    "/api/sessions/{id}",
    "/api/sessions/{id}/events",
    "/api/stats",
    "/api/openapi.json",
]


@pytest.fixture
def listed(tracker: ProgressTracker) -> Iterator[TestClient]:
    app = create_app(tracker, cors_origins=[PAGE, "https://App.Example.com/"])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def _paths(sessions: Sessions) -> list[str]:
    return [path.format(id=sessions.running, group=sessions.group) for path in _READABLE]


def test_nothing_by_default(tracker: ProgressTracker, sessions: Sessions) -> None:
    with TestClient(create_app(tracker), base_url="http://127.0.0.1") as client:
        for path in _paths(sessions):
            response = client.get(path, headers={"Origin": PAGE})
            assert response.status_code == 200
            assert "access-control-allow-origin" not in response.headers, path
        preflight = client.options(
            "/celery-progress/x/",
            headers={"Origin": PAGE, "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_a_listed_origin_reads_the_read_only_endpoints(
    listed: TestClient, sessions: Sessions
) -> None:
    for origin in (PAGE, "https://app.example.com"):
        for path in _paths(sessions):
            response = listed.get(path, headers={"Origin": origin})
            assert response.status_code == 200, path
            assert response.headers["access-control-allow-origin"] == origin, path
            assert "origin" in response.headers["vary"].lower()
            assert "access-control-allow-credentials" not in response.headers


def test_another_origin_gets_nothing(listed: TestClient, sessions: Sessions) -> None:
    response = listed.get(f"/celery-progress/{sessions.running}/", headers={"Origin": ELSEWHERE})
    assert "access-control-allow-origin" not in response.headers
    assert "origin" in response.headers["vary"].lower()  # a cache keeps the two apart


def test_pages_metrics_and_actions_are_never_shared(listed: TestClient, sessions: Sessions) -> None:
    for path in ("/", f"/sessions/{sessions.running}", "/metrics", "/static/dashboard.css"):
        response = listed.get(path, headers={"Origin": PAGE})
        assert "access-control-allow-origin" not in response.headers, path
    action = listed.post(
        f"/api/sessions/{sessions.running}/cancel", headers={"Origin": PAGE, **CSRF}
    )
    assert action.status_code == 403  # the CSRF check refuses it, and nothing lets it be read
    assert "access-control-allow-origin" not in action.headers


def test_a_preflight_is_granted_for_reading_only(listed: TestClient, sessions: Sessions) -> None:
    granted = listed.options(
        f"/api/sessions/{sessions.running}",
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert granted.status_code == 204
    assert granted.headers["access-control-allow-origin"] == PAGE
    assert granted.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "authorization" in granted.headers["access-control-allow-headers"].lower()
    refused = [
        {"Origin": PAGE, "Access-Control-Request-Method": "POST"},
        {
            "Origin": PAGE,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-requested-with",
        },
        {"Origin": ELSEWHERE, "Access-Control-Request-Method": "GET"},
    ]
    for headers in refused:
        response = listed.options(f"/api/sessions/{sessions.running}/cancel", headers=headers)
        assert "access-control-allow-origin" not in response.headers, headers


def test_the_token_still_applies(tracker: ProgressTracker, sessions: Sessions) -> None:
    """A listed origin reads with a token it sends itself; without one it reads the 401."""
    app = create_app(tracker, token=TOKEN, cors_origins=[PAGE])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        path = f"/celery-progress/{sessions.running}/"
        preflight = client.options(
            path,
            headers={
                "Origin": PAGE,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204  # preflights carry no credentials
        anonymous = client.get(path, headers={"Origin": PAGE})
        assert anonymous.status_code == 401
        assert anonymous.headers["access-control-allow-origin"] == PAGE
        authorized = client.get(path, headers={"Origin": PAGE, "Authorization": f"Bearer {TOKEN}"})
        assert authorized.status_code == 200
        assert authorized.json()["state"] == "PROGRESS"


@pytest.mark.parametrize(
    "origin", ["*", "127.0.0.1:8001", "http://a.example/path", "ftp://a.example", "http://"]
)
def test_an_origin_must_be_named_whole(tracker: ProgressTracker, origin: str) -> None:
    with pytest.raises(ConfigError, match="not a CORS origin"):
        create_app(tracker, cors_origins=[origin])


def test_the_command_refuses_a_bad_origin() -> None:
    result = CliRunner().invoke(
        main, ["dashboard", "--store-url", "memory://", "--cors-origin", "*"]
    )
    assert result.exit_code == 2
    assert "--cors-origin" in result.output
