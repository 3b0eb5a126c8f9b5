"""The dashboard's edges over real HTTP (uvicorn on loopback): failed logins throttled, no token
in a URL or in the access log, no open redirect, store outages without internals, the stream
cap, JSON errors on the API, and metrics read from the store across restarts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from celery_progress_mcp import ProgressConfig, ProgressTracker
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.testing import eventually
from celery_progress_mcp.web import create_app
from celery_progress_mcp.web.openapi import openapi_document

from ..store.private_postgres import PrivatePostgres
from .conftest import CSRF, TOKEN
from .server import serving

#: Seconds a test waits at most for one HTTP answer.
HTTP_TIMEOUT_S = 30.0


def _error_schema() -> dict[str, Any]:
    document = openapi_document()
    schema: dict[str, Any] = document["components"]["schemas"]["ErrorResponse"]
    return schema


def _assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    jsonschema.validate(body, _error_schema())
    return body


def _client(url: str, source: str = "127.0.0.1", **kwargs: Any) -> httpx.Client:
    """A client whose connections come from ``source`` (any 127.x address is this machine)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=url, transport=transport, timeout=HTTP_TIMEOUT_S, **kwargs)


@pytest.fixture
def tracker() -> Iterator[ProgressTracker]:
    with ProgressTracker(ProgressConfig(update_interval_ms=0)) as tracker:
        yield tracker


# -- failed logins ---------------------------------------------------------------------------


def test_failed_bearer_tokens_are_throttled_per_address(tracker: ProgressTracker) -> None:
    app = create_app(tracker, token=TOKEN, max_failed_logins=5, failed_login_window_s=60)
    with serving(app) as url, _client(url) as guesser, _client(url, "127.0.0.2") as other:
        for attempt in range(5):
            wrong = guesser.get("/api/stats", headers={"Authorization": f"Bearer guess-{attempt}"})
            _assert_json_error(wrong, 401)
        throttled = guesser.get("/api/stats", headers={"Authorization": "Bearer guess-6"})
        body = _assert_json_error(throttled, 429)
        assert body["error"] == "too_many_failed_logins"
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        # While throttled even the right token is not compared: a guess tells nothing.
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert guesser.get("/api/stats", headers=right).status_code == 429
        # Another address is not held back by this one's failures.
        assert other.get("/api/stats", headers=right).status_code == 200


def test_failed_logins_in_the_form_are_throttled(tracker: ProgressTracker) -> None:
    app = create_app(tracker, token=TOKEN, max_failed_logins=3)
    with serving(app) as url, _client(url) as browser:
        for attempt in range(3):
            assert browser.post("/login", data={"token": f"guess-{attempt}"}).status_code == 401
        throttled = browser.post("/login", data={"token": TOKEN})
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1
        assert "Too many failed logins" in throttled.text
        assert "set-cookie" not in throttled.headers


def test_default_throttle_is_five_failures_a_minute(tracker: ProgressTracker) -> None:
    with serving(create_app(tracker, token=TOKEN)) as url, _client(url) as guesser:
        statuses = [
            guesser.get("/api/stats", headers={"Authorization": "Bearer wrong"}).status_code
            for _ in range(6)
        ]
    assert statuses == [401] * 5 + [429]


# -- the token never in a URL, never in the log ------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_log() -> Iterator[_Records]:
    """uvicorn's access log as it would be written (its logger, at INFO)."""
    records = _Records()
    logger = logging.getLogger("uvicorn.access")
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(records)
    logger.setLevel(level)


def test_token_in_a_query_string_opens_nothing_and_is_never_logged(
    tracker: ProgressTracker, access_log: _Records
) -> None:
    app = create_app(tracker, token=TOKEN)
    with serving(app, access_log=True) as url, _client(url) as client:
        page = client.get(f"/?status=failed&token={TOKEN}")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2F%3Fstatus%3Dfailed"
        assert "set-cookie" not in page.headers
        _assert_json_error(client.get(f"/api/stats?token={TOKEN}&limit=1"), 401)
        _assert_json_error(client.get(f"/metrics?token={TOKEN}"), 401)
        login = client.get(f"/login?next=/&token={TOKEN}")
        assert login.status_code == 200
        assert TOKEN not in login.text
        # With the header, the token in the URL is still dropped before anything reads it.
        authorized = client.get(f"/api/sessions?token={TOKEN}", headers=_bearer())
        assert authorized.status_code == 200
        eventually(lambda: len(access_log.lines) >= 5, what="the access log lines")
    assert not [line for line in access_log.lines if TOKEN in line or "token=" in line]
    assert any("GET /?status=failed HTTP/1.1" in line for line in access_log.lines)
    assert any("GET /api/stats?limit=1 HTTP/1.1" in line for line in access_log.lines)


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# -- no open redirect ------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["open", "token"])
@pytest.mark.parametrize(
    "path",
    [
        f"//evil.example/?token={TOKEN}",
        "//evil.example/",
        "//evil.example",
        "/\\evil.example/",
        "///evil.example/x/",
        "//evil.example/api/stats/",
        "/login?next=//evil.example/",
    ],
)
def test_every_redirect_is_a_local_path(tracker: ProgressTracker, auth: str, path: str) -> None:
    app = create_app(tracker, token=TOKEN if auth == "token" else None)
    with serving(app) as url, _client(url) as client:
        for headers in ({}, _bearer() if auth == "token" else {}):
            response = client.get(path, headers=headers)
            location = response.headers.get("location")
            if location is None:
                assert not response.is_redirect
                continue
            assert location.startswith("/"), location
            assert not location.startswith(("//", "/\\")), location
            assert "evil.example" not in location.split("?")[0].split("/")[1:2]


# -- a store outage --------------------------------------------------------------------------


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    yield server
    server.close()


def test_store_outage_answers_name_the_failure_without_internals(
    postgres: PrivatePostgres,
) -> None:
    store = SqlStore(postgres.url)
    with ProgressTracker(ProgressConfig(update_interval_ms=0), store=store) as tracker:
        session_id = tracker.create_session("report")
        with serving(create_app(tracker)) as url, _client(url) as client:
            assert client.get("/api/stats").status_code == 200
            postgres.stop()
            answers = [
                client.get("/api/sessions"),
                client.get("/api/stats"),
                client.get(f"/api/sessions/{session_id}/events"),
                client.post(f"/api/sessions/{session_id}/cancel", headers=CSRF),
            ]
            for response in answers:
                body = _assert_json_error(response, 503)
                assert body == {
                    "error": "store_unavailable",
                    "detail": "the store is unavailable; try again later",
                }
            page = client.get("/")
            assert page.status_code == 503
            for response in [*answers, page]:
                text = response.text.lower()
                for internal in ("127.0.0.1", str(postgres.port), "select", "psycopg", "server at"):
                    assert internal not in text, (internal, response.text)
            metrics = client.get("/metrics")
            assert "celery_progress_store_up 0.0" in metrics.text
            assert str(postgres.port) not in metrics.text
            postgres.start()
            eventually(lambda: client.get("/api/stats").status_code == 200, what="the store back")


# -- live streams ----------------------------------------------------------------------------


def test_live_streams_are_capped_with_a_clear_503(tracker: ProgressTracker) -> None:
    app = create_app(tracker, max_streams=2)
    board = app.state.dashboard
    with serving(app) as url, ExitStack() as streams:
        for _ in range(2):
            client = streams.enter_context(_client(url))
            stream = streams.enter_context(client.stream("GET", "/api/events"))
            lines = stream.iter_lines()  # held: a dropped iterator closes the stream
            streams.callback(lines.close)
            assert next(lines).startswith("retry:")
        assert board.hub.client_count == 2
        with _client(url) as client:
            refused = client.get("/api/events")
        body = _assert_json_error(refused, 503)
        assert body["error"] == "too_many_streams"
        assert "at most 2 live streams" in body["detail"]
        assert int(refused.headers["retry-after"]) > 0
        streams.close()
        eventually(lambda: board.hub.client_count == 0, what="the streams closed")
        with _client(url) as client, client.stream("GET", "/api/events") as again:
            assert again.status_code == 200


def test_a_burst_of_streams_does_not_slip_past_the_cap(tracker: ProgressTracker) -> None:
    app = create_app(tracker, max_streams=3)
    board = app.state.dashboard
    statuses: list[int] = []
    release = threading.Event()

    def open_one() -> None:
        with _client(url) as client, client.stream("GET", "/api/events") as stream:
            statuses.append(stream.status_code)
            if stream.status_code == 200:
                release.wait(HTTP_TIMEOUT_S)

    with serving(app) as url:
        threads = [threading.Thread(target=open_one) for _ in range(12)]
        for thread in threads:
            thread.start()
        eventually(lambda: len(statuses) == 12, what="every stream answered")
        assert board.hub.client_count == 3
        release.set()
        for thread in threads:
            thread.join(HTTP_TIMEOUT_S)
    assert sorted(statuses) == [200] * 3 + [503] * 9


# -- JSON errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["open", "token"])
def test_api_errors_are_json_as_the_schema_says(tracker: ProgressTracker, auth: str) -> None:
    app = create_app(tracker, token=TOKEN if auth == "token" else None)
    headers = _bearer() if auth == "token" else {}
    with serving(app) as url, _client(url, headers=headers) as client:
        _assert_json_error(client.get("/api/no-such-route"), 404)
        _assert_json_error(client.get("/api/sessions/no-such-session"), 404)
        not_allowed = _assert_json_error(client.delete("/api/stats", headers=CSRF), 405)
        assert not_allowed["error"] == "method_not_allowed"
        _assert_json_error(client.put("/api/sessions/x/cancel", headers=CSRF), 405)
        for control in ("\x1f", "\x01abc", "abc\x7f", "\t"):
            _assert_json_error(client.get("/api/sessions", params={"q": control}), 400)
        _assert_json_error(client.get("/api/sessions", params={"q": " " * 201}), 400)
        not_a_task = _assert_json_error(client.get("/celery-progress/%C2%84/"), 404)
        assert not_a_task["error"] == "session_not_found"
        _assert_json_error(client.get("/celery-progress/g/a%00b/"), 404)
        _assert_json_error(client.get("/celery-progress/"), 404)
    # The pages stay pages: no route there is not an API error.
    with serving(app) as url, _client(url, headers=headers) as client:
        assert client.get("/no-such-page").status_code == 404


# -- Prometheus ------------------------------------------------------------------------------


def test_metrics_count_sessions_that_ended_before_the_dashboard_started(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'progress.db'}"
    with ProgressTracker(ProgressConfig(update_interval_ms=0, store_url=store_url)) as before:
        for number in range(3):
            before.complete_session(before.create_session("report"), f"done {number}")
        before.fail_session(before.create_session("report"), "disk full")
    with (
        ProgressTracker(ProgressConfig(update_interval_ms=0, store_url=store_url)) as tracker,
        serving(create_app(tracker)) as url,
        _client(url) as client,
    ):
        text = client.get("/metrics").text
    assert "celery_progress_session_duration_seconds_count 3.0" in text
    assert 'celery_progress_sessions_finished_total{state="completed"} 3.0' in text
    assert 'celery_progress_sessions_finished_total{state="failed"} 1.0' in text
    assert "celery_progress_sessions_created_total 4.0" in text
    # What this process counts itself says so, in its name and its help.
    assert "celery_progress_process_session_duration_seconds_count 0.0" in text
    helps = [line.split(" ", 3)[2:] for line in text.splitlines() if line.startswith("# HELP")]
    own = {name for name, help_text in helps if "This dashboard process's own" in help_text}
    assert {name.removesuffix("_created") for name in own} == {
        "celery_progress_process_events_total",
        "celery_progress_process_updates_total",
        "celery_progress_process_store_errors_total",
        "celery_progress_process_session_duration_seconds",
        "celery_progress_process_events",
        "celery_progress_process_updates",
        "celery_progress_process_store_errors",
    }
    # Every other figure is the store's, whatever this process saw.
    assert all(name.startswith("celery_progress_process_") for name in own)
