"""Authentication (token, cookie, basic), CSRF, host names, escaping."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from celery_progress_mcp import ProgressError, ProgressTracker
from celery_progress_mcp.web import create_app
from celery_progress_mcp.web.security import SESSION_COOKIE

from .conftest import CSRF, TOKEN, Sessions


@pytest.fixture
def token_app(tracker: ProgressTracker) -> Starlette:
    return create_app(tracker, token=TOKEN)


@pytest.fixture
def browser(token_app: Starlette) -> Iterator[TestClient]:
    """A client like a browser: no Authorization header, keeps cookies, sees redirects."""
    with TestClient(token_app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield client


# -- token, cookie, login form -----------------------------------------------------


def test_page_without_login_goes_to_the_form(browser: TestClient) -> None:
    response = browser.get("/?status=failed")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F%3Fstatus%3Dfailed"
    assert browser.get("/login").status_code == 200


def test_login_form_sets_a_cookie_that_is_not_the_token(browser: TestClient) -> None:
    response = browser.post("/login", data={"token": TOKEN, "next": "/sessions/x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/sessions/x"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    assert browser.get("/api/stats").status_code == 200
    assert browser.get("/").status_code == 200


def test_wrong_token_in_the_form_is_refused(browser: TestClient) -> None:
    response = browser.post("/login", data={"token": "guess"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert browser.get("/api/stats").status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "\\\\evil"])
def test_login_never_redirects_off_site(browser: TestClient, target: str) -> None:
    response = browser.post("/login", data={"token": TOKEN, "next": target})
    assert response.headers["location"] == "/"


def test_token_in_the_url_is_no_login_and_is_dropped(browser: TestClient) -> None:
    response = browser.get(f"/?status=failed&token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F%3Fstatus%3Dfailed"
    assert "set-cookie" not in response.headers
    assert browser.get(f"/api/stats?token={TOKEN}").status_code == 401


def test_wrong_token_in_the_url_is_not_a_login(browser: TestClient) -> None:
    assert browser.get("/?token=nope").status_code == 303
    assert browser.get("/api/stats?token=nope").status_code == 401


def test_forged_cookie_is_refused(browser: TestClient) -> None:
    browser.cookies.set(SESSION_COOKIE, "0" * 64)
    assert browser.get("/api/stats").status_code == 401


def test_logout_clears_the_cookie(browser: TestClient) -> None:
    browser.post("/login", data={"token": TOKEN})
    assert browser.get("/api/stats").status_code == 200
    browser.post("/logout")
    assert browser.get("/api/stats").status_code == 401


def test_basic_auth(tracker: ProgressTracker) -> None:
    app = create_app(tracker, basic_auth=("ops", "pa:ss"))
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        refused = client.get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        good = base64.b64encode(b"ops:pa:ss").decode()
        bad = base64.b64encode(b"ops:wrong").decode()
        assert client.get("/", headers={"Authorization": f"Basic {good}"}).status_code == 200
        assert client.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401
        assert client.get("/", headers={"Authorization": "Basic %%%"}).status_code == 401


def test_empty_token_is_refused(tracker: ProgressTracker) -> None:
    with pytest.raises(ProgressError):
        create_app(tracker, token="")


# -- CSRF ------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_mode", ["open", "token"])
def test_state_change_needs_the_custom_header(
    client: TestClient, tracker: ProgressTracker, sessions: Sessions
) -> None:
    response = client.post(f"/api/sessions/{sessions.running}/cancel")
    assert response.status_code == 403
    assert response.json()["error"] == "csrf"
    assert tracker.get_session(sessions.running).status == "in_progress"


@pytest.mark.parametrize("auth_mode", ["open", "token"])
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:9999"])
def test_state_change_from_another_origin_is_refused(
    client: TestClient, tracker: ProgressTracker, sessions: Sessions, origin: str
) -> None:
    response = client.post(
        f"/api/sessions/{sessions.running}/cancel", headers={**CSRF, "Origin": origin}
    )
    assert response.status_code == 403
    assert tracker.get_session(sessions.running).status == "in_progress"


@pytest.mark.parametrize("auth_mode", ["open"])
def test_same_origin_state_change_is_allowed(client: TestClient, sessions: Sessions) -> None:
    response = client.post(
        f"/api/sessions/{sessions.running}/pause",
        headers={**CSRF, "Origin": "http://127.0.0.1"},
    )
    assert response.status_code == 200


def test_login_from_another_origin_is_refused(browser: TestClient) -> None:
    response = browser.post(
        "/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 403


# -- host names (DNS rebinding) ---------------------------------------------------------------


def test_open_app_serves_only_loopback_names(tracker: ProgressTracker) -> None:
    app = create_app(tracker)
    with TestClient(app, base_url="http://evil.example") as client:
        assert client.get("/api/stats").status_code == 400
    for host in ("127.0.0.1", "localhost:5566", "[::1]:5566"):
        with TestClient(app, base_url=f"http://{host}") as client:
            assert client.get("/api/stats").status_code == 200, host


def test_allowed_hosts_widen_the_open_app(tracker: ProgressTracker) -> None:
    app = create_app(tracker, allowed_hosts=["progress.internal"])
    with TestClient(app, base_url="http://progress.internal") as client:
        assert client.get("/api/stats").status_code == 200


# -- escaping --------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_mode", ["open"])
def test_pages_escape_session_strings(
    client: TestClient, tracker: ProgressTracker, sessions: Sessions
) -> None:
    tracker.fail_session(sessions.paused, "<b onmouseover=alert(1)>boom</b>", "<E>")
    for path in ("/", f"/sessions/{sessions.running}", f"/sessions/{sessions.paused}"):
        html = client.get(path).text
        assert "<script>window.__pwned" not in html
        assert "<b onmouseover" not in html
        assert "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in client.get("/").text
    svg = client.get(f"/sessions/{sessions.group}/history.svg").text
    assert "<model>" not in svg


@pytest.mark.parametrize("auth_mode", ["open"])
def test_pages_send_a_strict_content_security_policy(client: TestClient) -> None:
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


# -- mounting -----------------------------------------------------------------------------


def test_mounted_under_a_prefix(tracker: ProgressTracker, sessions: Sessions) -> None:
    outer = Starlette(routes=[Mount("/progress", app=create_app(tracker, token=TOKEN))])
    with TestClient(outer, base_url="http://127.0.0.1", follow_redirects=False) as client:
        assert client.get("/progress/").headers["location"].startswith("/progress/login?")
        login = client.post("/progress/login", data={"token": TOKEN, "next": "/"})
        assert login.headers["location"] == "/progress/"
        assert "Path=/progress" in login.headers["set-cookie"]
        page = client.get("/progress/")
        assert page.status_code == 200
        assert 'href="/progress/static/dashboard.css"' in page.text
        assert f'href="/progress/sessions/{sessions.running}"' in page.text
        assert client.get("/progress/api/stats").json()["total_created"] == 7
        assert client.get("/progress/static/dashboard.js").status_code == 200


def test_routed_by_a_plain_asgi_dispatcher(tracker: ProgressTracker, sessions: Sessions) -> None:
    """The Django ``asgi.py`` recipe of create_app's docstring: a prefix and a root_path."""
    from starlette.responses import PlainTextResponse
    from starlette.types import Receive, Scope, Send

    dashboard = create_app(tracker)
    other = PlainTextResponse("the rest of the site")

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/progress/"):
            scope = {**scope, "root_path": scope.get("root_path", "") + "/progress"}
            await dashboard(scope, receive, send)
            return
        await other(scope, receive, send)

    # No ``with``: like Django's handler, this dispatcher does not speak lifespan.
    client = TestClient(application, base_url="http://127.0.0.1")
    assert client.get("/elsewhere").text == "the rest of the site"
    page = client.get("/progress/")
    assert f'href="/progress/sessions/{sessions.running}"' in page.text
    assert client.get(f"/progress/api/sessions/{sessions.running}").status_code == 200
    assert client.get("/progress/api/openapi.json").json()["servers"] == [{"url": "/progress"}]
