"""The dashboard's JSON API and live stream under Django: the same JSON as the Starlette dashboard.

``api/sessions``, ``api/sessions/<id>``, ``api/sessions/<id>/events``,
``api/stats``, ``api/events`` (SSE) and the actions
``api/sessions/<id>/{cancel,pause,resume}`` (POST, under Django's CSRF
protection: a page sends the ``X-CSRFToken`` header). Every view needs a
dashboard user (:mod:`.access`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from ..monitor.api import (
    Reply,
    action_reply,
    error_reply,
    events_reply,
    session_reply,
    sessions_reply,
    stats_reply,
    stream_request,
    too_many_streams_reply,
)
from ..monitor.live import StreamFilter
from .access import api_user_required
from .responses import json_response, replied, stream_response
from .runtime import runtime

__all__ = ["act", "events_stream", "session", "session_events", "sessions", "stats"]


@require_GET
@api_user_required
async def sessions(request: HttpRequest) -> JsonResponse:
    return await replied(sessions_reply(runtime().access, request.GET))


@require_GET
@api_user_required
async def session(request: HttpRequest, session_id: str) -> JsonResponse:
    return await replied(session_reply(runtime().access, session_id))


@require_GET
@api_user_required
async def session_events(request: HttpRequest, session_id: str) -> JsonResponse:
    return await replied(events_reply(runtime().access, session_id, request.GET))


@require_GET
@api_user_required
async def stats(request: HttpRequest) -> JsonResponse:
    return await replied(stats_reply(runtime().access))


@require_POST
@csrf_protect
@api_user_required
async def act(request: HttpRequest, session_id: str, action: str) -> JsonResponse:
    """Cancel (the task is revoked too), pause or resume a session."""
    return await replied(action_reply(runtime().access, action, session_id, request.body))


@require_GET
@api_user_required
async def events_stream(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Live updates of every session (or of ``session_id=...``), resumable with Last-Event-ID."""
    try:
        stream_filter, since = stream_request(request.GET, request.headers.get("Last-Event-ID"))
    except Exception as exc:
        return json_response(error_reply(exc))
    return await stream_response(request, _opened(stream_filter, since))


async def _opened(stream_filter: StreamFilter, since: int | None) -> AsyncIterator[bytes] | Reply:
    """The hub's stream, or the refusal when it serves its maximum of streams."""
    hub = runtime().hub
    stream = await hub.open_stream(stream_filter, since)
    return too_many_streams_reply(hub.max_streams) if stream is None else stream
