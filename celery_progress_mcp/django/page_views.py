"""The dashboard's pages under Django: the same pages as the Starlette dashboard's.

Rendered by :mod:`..monitor.pages` (Jinja2, autoescaped) with this site's
URL prefixes, the user's name and the CSRF token the page's script sends
with its actions; served with the same Content-Security-Policy. The
dashboard's own script and style sheet are served here too
(``dashboard/static/...``), so the pages need no ``collectstatic``.
"""

from __future__ import annotations

import importlib.resources

from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.views.decorators.http import require_GET

from ..core.errors import SessionNotFound
from ..monitor.pages import SECURITY_HEADERS, SVG_HEADERS, Page, chart_svg, list_page, render
from ..monitor.pages import session_page as read_session_page
from .access import page_user_required
from .runtime import runtime

__all__ = ["dashboard", "session_chart", "session_page", "static_file"]

#: The dashboard's static files, and their types: nothing else is served.
STATIC_FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
#: How long a browser may keep a static file before asking again, in seconds.
STATIC_MAX_AGE_S = 300


def _prefix(request: HttpRequest, name: str, suffix: str) -> str:
    """The URL of ``name`` in this include's namespace, without ``suffix``."""
    match = request.resolver_match
    namespace = match.namespace if match is not None and match.namespace else ""
    url = reverse(f"{namespace}:{name}" if namespace else name)
    return url.removesuffix(suffix)


async def _render(request: HttpRequest, page: Page) -> HttpResponse:
    here = runtime()
    user = await request.auser()
    html = render(
        here.templates,
        page,
        base=_prefix(request, "dashboard", "/"),
        api=_prefix(request, "api_sessions", "/api/sessions"),
        title=here.settings.title,
        auth=False,  # Django's login: the site's own pages log in and out
        user_name=user.get_username(),
        csrf_token=get_token(request),
    )
    return HttpResponse(html, status=page.status, headers=dict(SECURITY_HEADERS))


@require_GET
@page_user_required
async def dashboard(request: HttpRequest) -> HttpResponse:
    """The sessions, filtered and paged, live."""
    return await _render(request, await list_page(runtime().access, request.GET))


@require_GET
@page_user_required
async def session_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """One session: its state, sub-operations, history chart and events, live."""
    page = await read_session_page(runtime().access, session_id)
    if page.status == 404:
        raise Http404("no such session")
    return await _render(request, page)


@require_GET
@page_user_required
async def session_chart(request: HttpRequest, session_id: str) -> HttpResponse:
    try:
        svg = await chart_svg(runtime().access, session_id)
    except SessionNotFound:
        raise Http404("no such session") from None
    return HttpResponse(svg, content_type="image/svg+xml", headers=dict(SVG_HEADERS))


@require_GET
async def static_file(request: HttpRequest, name: str) -> HttpResponse:
    """``dashboard.css`` and ``dashboard.js`` (public, like any site's static files)."""
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise Http404("no such file")
    body = (importlib.resources.files("celery_progress_mcp.monitor") / "static" / name).read_bytes()
    headers = {"Cache-Control": f"max-age={STATIC_MAX_AGE_S}", "X-Content-Type-Options": "nosniff"}
    return HttpResponse(body, content_type=content_type, headers=headers)
