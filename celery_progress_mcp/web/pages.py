"""The HTML pages: the session list, one session, the login form.

Server-rendered with Jinja2 (autoescaped); the scripts in ``static/`` then
keep them live from the SSE stream, writing text only through
``textContent``. A strict Content-Security-Policy allows scripts and styles
from this app alone, so even a missed escape could not run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..core.errors import InvalidProgress, SessionNotFound
from ..core.states import SessionStatus
from .chart import history_svg
from .dashboard import Dashboard, dashboard_of
from .params import checked_id, list_filters
from .schemas import detail, stats_response, summarize
from .security import SESSION_COOKIE, client_address, session_cookie_header

__all__ = ["SECURITY_HEADERS", "page_routes"]

#: Sent with every page.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    # Not "no-referrer": under it a browser sends "Origin: null" with a form's POST,
    # which the CSRF check must refuse, so the login form could never log in.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
#: Events shown on a session page when it loads (the script adds newer ones).
EVENT_LOG_ROWS = 200
#: Largest login form accepted, in bytes.
MAX_LOGIN_BODY_BYTES = 4096


def _render(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    board = dashboard_of(request)
    page = board.templates.get_template(template).render(
        base=request.scope.get("root_path", ""),
        title=board.title,
        auth=board.auth.required,
        states=[status.value for status in SessionStatus],
        **context,
    )
    return HTMLResponse(page, status_code, headers=SECURITY_HEADERS)


async def session_list(request: Request) -> Response:
    board = dashboard_of(request)
    try:
        filters = list_filters(request.query_params)
    except InvalidProgress as exc:
        return _render(request, "error.html", 400, message=str(exc))
    seq = await board.access.last_seq()
    page = await board.access.page(filters)
    stats = stats_response(await board.access.stats())
    now = datetime.now(UTC)
    previous = max(0, filters.offset - filters.limit) if filters.offset else None
    following = filters.offset + filters.limit
    return _render(
        request,
        "list.html",
        seq=seq,
        filters=filters,
        sessions=[summarize(session, now) for session in page.sessions],
        total=page.total,
        stats=stats,
        prev_query=urlencode(filters.query(offset=previous), doseq=True)
        if previous is not None
        else None,
        next_query=urlencode(filters.query(offset=following), doseq=True)
        if following < page.total
        else None,
    )


async def session_page(request: Request) -> Response:
    board = dashboard_of(request)
    try:
        session_id = checked_id(request.path_params["session_id"])
        seq = await board.access.last_seq()
        session = await board.access.session(session_id)
    except SessionNotFound:
        return _render(request, "error.html", 404, message="No such session.")
    shown, total = await board.access.recent_events(session_id, EVENT_LOG_ROWS)
    return _render(
        request,
        "session.html",
        seq=seq,
        session=detail(session),
        events=list(reversed(shown)),
        events_hidden=total - len(shown),
        last_event_seq=shown[-1].seq if shown else 0,
        metadata=session.metadata,
        chart=history_svg(session),
    )


async def session_chart(request: Request) -> Response:
    board = dashboard_of(request)
    session_id = checked_id(request.path_params["session_id"])
    session = await board.access.session(session_id)
    return Response(
        history_svg(session),
        media_type="image/svg+xml",
        headers={"cache-control": "no-store", "x-content-type-options": "nosniff"},
    )


async def login(request: Request) -> Response:
    board = dashboard_of(request)
    target = _safe_next(request.query_params.get("next", "/"))
    if request.method == "GET":
        return _render(request, "login.html", next=target, failed=False)
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY_BYTES:
        return _render(request, "login.html", 400, next=target, failed=True)
    form = dict(parse_qsl(body.decode("utf-8", "replace")))
    target = _safe_next(form.get("next", target))
    address = client_address(request.scope)
    wait_s = board.throttle.retry_after_s(address)
    if wait_s is not None:
        # Refused before the token is compared: a guess now tells nothing.
        page = _render(request, "login.html", 429, next=target, failed=True, retry_after_s=wait_s)
        page.headers["retry-after"] = str(wait_s)
        return page
    if not board.auth.token_ok(form.get("token", "")):
        board.throttle.failed(address)
        return _render(request, "login.html", 401, next=target, failed=True)
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
        Route("/sessions/{session_id:path}", session_page, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
