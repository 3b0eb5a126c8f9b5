"""The dashboard's HTML pages, whatever framework serves them.

Server-rendered with Jinja2 (autoescaped); the scripts in ``static/`` then
keep them live from the SSE stream, writing text only through
``textContent``. A strict Content-Security-Policy (:data:`SECURITY_HEADERS`)
allows scripts and styles from the serving site alone, so even a missed
escape could not run.

:func:`list_page` and :func:`session_page` read what a page shows and give
a :class:`Page`; the Starlette dashboard and the Django app render it with
:func:`render`, adding what only they know (the URL prefixes, the login).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

from ..core.errors import InvalidProgress, SessionNotFound
from ..core.states import SessionStatus
from .chart import history_svg
from .formatting import FILTERS
from .params import QueryParams, checked_id, list_filters
from .schemas import detail, stats_response, summarize
from .tracker_access import TrackerAccess

__all__ = [
    "EVENT_LOG_ROWS",
    "SECURITY_HEADERS",
    "SVG_HEADERS",
    "Page",
    "chart_svg",
    "list_page",
    "render",
    "session_page",
    "templates",
]

#: Sent with every page.
SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    # Not "no-referrer": under it a browser sends "Origin: null" with a form's POST,
    # which a CSRF check must refuse, so a login form could never log in.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
#: Sent with a session's history chart.
SVG_HEADERS: Mapping[str, str] = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
#: Events shown on a session page when it loads (the script adds newer ones).
EVENT_LOG_ROWS = 200


@dataclass(frozen=True, slots=True)
class Page:
    """A page to render: its template, its status, what it shows."""

    template: str
    status: int = 200
    context: dict[str, Any] = field(default_factory=dict)


def templates() -> Environment:
    """The pages' templates, autoescaped, with the dashboard's filters."""
    environment = Environment(
        loader=PackageLoader("celery_progress_mcp.monitor", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(FILTERS)
    return environment


def render(environment: Environment, page: Page, **site: Any) -> str:
    """The page as HTML; ``site``: ``base`` (the pages' URL prefix), ``title``, ``auth``..."""
    return environment.get_template(page.template).render(
        states=[status.value for status in SessionStatus], **site, **page.context
    )


async def list_page(access: TrackerAccess, params: QueryParams) -> Page:
    try:
        filters = list_filters(params)
    except InvalidProgress as exc:
        return Page("error.html", 400, {"message": str(exc)})
    seq = await access.last_seq()
    page = await access.page(filters)
    stats = stats_response(await access.stats())
    now = datetime.now(UTC)
    previous = max(0, filters.offset - filters.limit) if filters.offset else None
    following = filters.offset + filters.limit
    return Page(
        "list.html",
        context={
            "seq": seq,
            "filters": filters,
            "sessions": [summarize(session, now) for session in page.sessions],
            "total": page.total,
            "stats": stats,
            "prev_query": urlencode(filters.query(offset=previous), doseq=True)
            if previous is not None
            else None,
            "next_query": urlencode(filters.query(offset=following), doseq=True)
            if following < page.total
            else None,
        },
    )


async def session_page(access: TrackerAccess, raw_id: str) -> Page:
    try:
        session_id = checked_id(raw_id)
        seq = await access.last_seq()
        session = await access.session(session_id)
    except SessionNotFound:
        return Page("error.html", 404, {"message": "No such session."})
    shown, total = await access.recent_events(session_id, EVENT_LOG_ROWS)
    return Page(
        "session.html",
        context={
            "seq": seq,
            "session": detail(session),
            "events": list(reversed(shown)),
            "events_hidden": total - len(shown),
            "last_event_seq": shown[-1].seq if shown else 0,
            "metadata": session.metadata,
            "chart": history_svg(session),
        },
    )


async def chart_svg(access: TrackerAccess, raw_id: str) -> str:
    """The session's history as SVG; :class:`SessionNotFound` for an unknown one."""
    return history_svg(await access.session(checked_id(raw_id)))
