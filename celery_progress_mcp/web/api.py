"""The JSON API, the SSE stream, ``/metrics`` and the celery-progress endpoint.

Errors answer :class:`~.schemas.ErrorResponse` with a status from the
package's hierarchy (see :func:`error_response`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from http import HTTPStatus

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..core.errors import (
    InvalidProgress,
    InvalidTransition,
    ProgressError,
    SessionNotFound,
    StoreUnavailable,
    TrackingDisabled,
)
from ..core.models import ProgressSession
from .compat import Answer
from .compat_reader import ResultBackendError
from .dashboard import Dashboard, dashboard_of
from .live import StreamFilter
from .metrics import CONTENT_TYPE
from .openapi import openapi_document
from .params import MAX_SEQ, checked_id, checked_task_id, int_param, list_filters
from .schemas import (
    ActionRequest,
    ActionResult,
    EventPage,
    SessionPageResponse,
    detail,
    stats_response,
    summarize,
)
from .tracker_access import TrackerAccess

__all__ = ["api_routes", "error_response", "http_error_response"]

#: Session ids a single SSE client may watch.
MAX_WATCHED_SESSIONS = 500
#: Largest page of the event log.
MAX_EVENT_PAGE = 1000
#: Largest accepted action body, in bytes.
MAX_BODY_BYTES = 16 * 1024

_NO_STORE = {"cache-control": "no-store"}

logger = logging.getLogger(__name__)


def _json(model: BaseModel, status_code: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code, headers=_NO_STORE)


#: What a client is told of a store outage: its cause (a host, a port, SQL) goes to the log.
STORE_UNAVAILABLE_DETAIL = "the store is unavailable; try again later"
#: Codes of the HTTP errors the router answers itself (no route, wrong method).
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(exc: Exception) -> JSONResponse:
    """The package's errors as HTTP: 404 unknown, 409 refused move, 400 bad input, 503 store.

    Bodies name the failure, never internals: a store outage is logged with
    its cause and answered with :data:`STORE_UNAVAILABLE_DETAIL` alone.
    """
    status, code = 500, "internal_error"
    match exc:
        case SessionNotFound():
            status, code = 404, "session_not_found"
        case InvalidTransition():
            status, code = 409, "invalid_transition"
        case InvalidProgress():
            status, code = 400, "invalid_request"
        case TrackingDisabled():
            status, code = 503, "tracking_disabled"
        case StoreUnavailable():
            status, code = 503, "store_unavailable"
        case ProgressError():
            status, code = 409, "refused"
    detail_text = str(exc)
    if status == 500:
        logger.error("dashboard request failed", exc_info=exc)
        detail_text = "internal error"
    elif code == "store_unavailable":
        logger.warning("store unavailable: %s", exc)
        detail_text = STORE_UNAVAILABLE_DETAIL
    return JSONResponse({"error": code, "detail": detail_text}, status, headers=_NO_STORE)


def http_error_response(status: int, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The router's own errors (no such route, wrong method) as the API's JSON errors."""
    code = _HTTP_ERROR_CODES.get(status, "http_error")
    try:
        detail_text = HTTPStatus(status).phrase.lower()
    except ValueError:
        detail_text = code
    return JSONResponse(
        {"error": code, "detail": detail_text}, status, headers={**_NO_STORE, **(headers or {})}
    )


async def list_sessions(request: Request) -> Response:
    page = await dashboard_of(request).access.page(list_filters(request.query_params))
    return _json(
        SessionPageResponse.model_construct(
            sessions=[summarize(session) for session in page.sessions],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )
    )


async def get_session(request: Request) -> Response:
    session_id = checked_id(request.path_params["session_id"])
    session = await dashboard_of(request).access.session(session_id)
    return _json(detail(session))


async def session_events(request: Request) -> Response:
    session_id = checked_id(request.path_params["session_id"])
    params = request.query_params
    since = int_param(params, "since", 0, low=0, high=MAX_SEQ)
    limit = int_param(params, "limit", 200, low=1, high=MAX_EVENT_PAGE)
    access = dashboard_of(request).access
    await access.session(session_id)  # 404 for an unknown session
    events = await access.events(session_id, since=since, limit=limit)
    next_since = events[-1].seq if events else since
    return _json(EventPage.model_construct(events=events, next_since=next_since))


async def get_stats(request: Request) -> Response:
    stats = await dashboard_of(request).access.stats()
    return _json(stats_response(stats))


async def _action_body(request: Request) -> ActionRequest:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InvalidProgress(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return ActionRequest()
    try:
        return ActionRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors(include_url=False))
        raise InvalidProgress(f"invalid body: {problems}") from None


async def _action(request: Request) -> tuple[TrackerAccess, str, ActionRequest]:
    """What an action on a session needs: the tracker, the session's id, the checked body."""
    session_id = checked_id(request.path_params["session_id"])
    body = await _action_body(request)
    return dashboard_of(request).access, session_id, body


def _action_result(session: ProgressSession) -> Response:
    return _json(ActionResult.model_construct(session=summarize(session)))


async def cancel_session(request: Request) -> Response:
    access, session_id, body = await _action(request)
    reason = body.reason or "cancelled from the dashboard"
    return _action_result(await access.cancel(session_id, reason))


async def pause_session(request: Request) -> Response:
    access, session_id, body = await _action(request)
    reason = body.reason or "paused from the dashboard"
    return _action_result(await access.pause(session_id, reason))


async def resume_session(request: Request) -> Response:
    access, session_id, _ = await _action(request)
    return _action_result(await access.resume(session_id))


async def events_stream(request: Request) -> Response:
    board = dashboard_of(request)
    params = request.query_params
    watched = [checked_id(value) for value in params.getlist("session_id")]
    if len(watched) > MAX_WATCHED_SESSIONS:
        raise InvalidProgress(f"at most {MAX_WATCHED_SESSIONS} session_id parameters")
    include_new = params.get("include_new", "").lower() in ("1", "true", "yes")
    since: int | None = None
    last_event_id = request.headers.get("last-event-id", "").strip()
    if last_event_id:
        since = _seq(last_event_id, "Last-Event-ID")
    elif params.get("since"):
        since = int_param(params, "since", 0, low=0, high=MAX_SEQ)
    stream_filter = StreamFilter(frozenset(watched) if watched else None, include_new)
    stream = await board.hub.open_stream(stream_filter, since)
    if stream is None:
        # Each open stream holds a connection and a queue: past the cap, a clear refusal.
        limit = board.hub.max_streams
        failure = {"error": "too_many_streams", "detail": f"at most {limit} live streams are open"}
        return JSONResponse(failure, 503, headers={**_NO_STORE, "retry-after": "30"})
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _seq(raw: str, what: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidProgress(f"{what} must be an event sequence number") from None
    if value < 0:
        raise InvalidProgress(f"{what} must not be negative")
    return value


async def metrics(request: Request) -> Response:
    board = dashboard_of(request)

    def render() -> bytes:
        board.access.hear_other_processes()  # a mounted app gets no lifespan: the first scrape
        return board.metrics.render()

    body = await board.access.tracker.run(render)
    return Response(body, media_type=CONTENT_TYPE, headers=_NO_STORE)


async def openapi(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    return JSONResponse(openapi_document(root), headers=_NO_STORE)


async def celery_progress(request: Request) -> Response:
    """celery-progress's ``/celery-progress/<task_id>/``, for any id (see :mod:`.compat`)."""
    task_id = checked_task_id(request.path_params["task_id"])
    return await _compat_answer(dashboard_of(request).celery_progress.task(task_id))


async def celery_group_progress(request: Request) -> Response:
    """celery-progress's ``/celery-progress/g/<group_id>/``; 404 for a group nothing knows."""
    group_id = checked_task_id(request.path_params["group_id"])
    return await _compat_answer(dashboard_of(request).celery_progress.group(group_id))


async def _compat_answer(answer: Awaitable[Answer]) -> Response:
    try:
        body = await answer
    except ResultBackendError as exc:
        # The cause (a URL, a host) is for the log, not for the client.
        logger.warning("result backend unreadable for %s: %r", exc, exc.__cause__)
        detail = "the result backend could not be read"
        failure = {"error": "result_backend_unavailable", "detail": detail}
        return JSONResponse(failure, 503, headers=_NO_STORE)
    return JSONResponse(body, headers=_NO_STORE)


def api_routes(board: Dashboard) -> list[BaseRoute]:
    del board  # routes find the dashboard on the request; kept for symmetry with pages
    return [
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route("/api/sessions", list_sessions, methods=["GET"]),
        # Ids may hold "/": the sub-resources come first, the bare id last.
        Route("/api/sessions/{session_id:path}/events", session_events, methods=["GET"]),
        Route("/api/sessions/{session_id:path}/cancel", cancel_session, methods=["POST"]),
        Route("/api/sessions/{session_id:path}/pause", pause_session, methods=["POST"]),
        Route("/api/sessions/{session_id:path}/resume", resume_session, methods=["POST"]),
        Route("/api/sessions/{session_id:path}", get_session, methods=["GET"]),
        Route("/api/stats", get_stats, methods=["GET"]),
        Route("/api/events", events_stream, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/celery-progress/{task_id}/", celery_progress, methods=["GET"]),
        Route("/celery-progress/g/{group_id}/", celery_group_progress, methods=["GET"]),
    ]
