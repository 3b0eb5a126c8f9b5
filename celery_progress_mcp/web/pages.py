"""The HTML pages on Starlette: the session list, one session, the login form.

What each page shows is read and rendered by :mod:`..monitor.pages`; the
login form and its cookie are this app's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..monitor.pages import (
    SECURITY_HEADERS,
    SVG_HEADERS,
    Page,
    chart_svg,
    list_page,
    render,
    session_page,
)
from .dashboard import Dashboard, dashboard_of
from .security import SESSION_COOKIE, client_address, session_cookie_header

__all__ = ["page_routes"]

#: Largest login form accepted, in bytes.
MAX_LOGIN_BODY_BYTES = 4096


def _render(request: Request, page: Page) -> HTMLResponse:
    board = dashboard_of(request)
    root = request.scope.get("root_path", "")
    html = render(
        board.templates, page, base=root, api=root, title=board.title, auth=board.auth.required
    )
    return HTMLResponse(html, page.status, headers=dict(SECURITY_HEADERS))


def _form_page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    return _render(request, Page("login.html", status_code, context))


async def session_list(request: Request) -> Response:
    return _render(request, await list_page(dashboard_of(request).access, request.query_params))


async def session(request: Request) -> Response:
    access = dashboard_of(request).access
    return _render(request, await session_page(access, request.path_params["session_id"]))


async def session_chart(request: Request) -> Response:
    svg = await chart_svg(dashboard_of(request).access, request.path_params["session_id"])
    return Response(svg, media_type="image/svg+xml", headers=dict(SVG_HEADERS))


async def login(request: Request) -> Response:
    board = dashboard_of(request)
    target = _safe_next(request.query_params.get("next", "/"))
    if request.method == "GET":
        return _form_page(request, next=target, failed=False)
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY_BYTES:
        return _form_page(request, 400, next=target, failed=True)
    form = dict(parse_qsl(body.decode("utf-8", "replace")))
    target = _safe_next(form.get("next", target))
    address = client_address(request.scope)
    wait_s = board.throttle.retry_after_s(address)
    if wait_s is not None:
        # Refused before the token is compared: a guess now tells nothing.
        page = _form_page(request, 429, next=target, failed=True, retry_after_s=wait_s)
        page.headers["retry-after"] = str(wait_s)
        return page
    if not board.auth.token_ok(form.get("token", "")):
        board.throttle.failed(address)
        return _form_page(request, 401, next=target, failed=True)
    response = RedirectResponse(request.scope.get("root_path", "") + target, 303)
    response.headers.append("set-cookie", session_cookie_header(board.auth, request.scope))
    return response


async def logout(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    response = RedirectResponse(root + "/login", 303)
    response.delete_cookie(SESSION_COOKIE, path=root or "/")
    return response


def _safe_next(target: str) -> str:
    """Only a path of this app: never another site (``//evil``, ``https://...``)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def page_routes(board: Dashboard) -> list[BaseRoute]:
    del board
    return [
        Route("/", session_list, methods=["GET"]),
        Route("/sessions/{session_id:path}/history.svg", session_chart, methods=["GET"]),
        Route("/sessions/{session_id:path}", session, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
