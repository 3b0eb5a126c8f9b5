"""The JSON API's answers, whatever framework serves them.

Each function takes the tracker's access and what the request carried
(already-routed ids, the query string, the body) and gives a :class:`Reply`:
a status, a JSON body, headers. The Starlette dashboard (:mod:`..web.api`)
and the Django app (:mod:`..django.views`) turn replies into their own
responses, so both serve the same JSON for the same request, errors
included (:func:`error_reply`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ValidationError

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
from .live import StreamFilter
from .params import MAX_SEQ, QueryParams, checked_id, int_param, list_filters
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

__all__ = [
    "ACTIONS",
    "MAX_BODY_BYTES",
    "MAX_EVENT_PAGE",
    "MAX_WATCHED_SESSIONS",
    "NO_STORE",
    "STORE_UNAVAILABLE_DETAIL",
    "Reply",
    "action_reply",
    "compat_reply",
    "error_reply",
    "events_reply",
    "http_error_reply",
    "session_reply",
    "sessions_reply",
    "stats_reply",
    "stream_request",
    "too_many_streams_reply",
]

#: Session ids a single SSE client may watch.
MAX_WATCHED_SESSIONS = 500
#: Largest page of the event log.
MAX_EVENT_PAGE = 1000
#: Largest accepted action body, in bytes.
MAX_BODY_BYTES = 16 * 1024
#: Sent with every answer: progress is live, never cached.
NO_STORE: Mapping[str, str] = {"cache-control": "no-store"}
#: What a client is told of a store outage: its cause (a host, a port, SQL) goes to the log.
STORE_UNAVAILABLE_DETAIL = "the store is unavailable; try again later"
#: The actions on a session, by the last segment of their URL.
ACTIONS = ("cancel", "pause", "resume")
#: Seconds a client refused a live stream is asked to wait.
STREAM_RETRY_AFTER_S = 30
#: Codes of the HTTP errors a router answers itself (no route, wrong method).
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer of the API: its status, its JSON body, its headers."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: dict(NO_STORE))


def _model(model: BaseModel) -> Reply:
    return Reply(model.model_dump(mode="json"))


def error_reply(exc: Exception) -> Reply:
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
    return Reply({"error": code, "detail": detail_text}, status)


def http_error_reply(status: int, headers: Mapping[str, str] | None = None) -> Reply:
    """A router's own errors (no such route, wrong method) as the API's JSON errors."""
    code = _HTTP_ERROR_CODES.get(status, "http_error")
    try:
        detail_text = HTTPStatus(status).phrase.lower()
    except ValueError:
        detail_text = code
    return Reply({"error": code, "detail": detail_text}, status, {**NO_STORE, **(headers or {})})


async def sessions_reply(access: TrackerAccess, params: QueryParams) -> Reply:
    page = await access.page(list_filters(params))
    return _model(
        SessionPageResponse.model_construct(
            sessions=[summarize(session) for session in page.sessions],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )
    )


async def session_reply(access: TrackerAccess, raw_id: str) -> Reply:
    return _model(detail(await access.session(checked_id(raw_id))))


async def events_reply(access: TrackerAccess, raw_id: str, params: QueryParams) -> Reply:
    session_id = checked_id(raw_id)
    since = int_param(params, "since", 0, low=0, high=MAX_SEQ)
    limit = int_param(params, "limit", 200, low=1, high=MAX_EVENT_PAGE)
    await access.session(session_id)  # 404 for an unknown session
    events = await access.events(session_id, since=since, limit=limit)
    next_since = events[-1].seq if events else since
    return _model(EventPage.model_construct(events=events, next_since=next_since))


async def stats_reply(access: TrackerAccess) -> Reply:
    return _model(stats_response(await access.stats()))


def _action_body(body: bytes) -> ActionRequest:
    if len(body) > MAX_BODY_BYTES:
        raise InvalidProgress(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return ActionRequest()
    try:
        return ActionRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors(include_url=False))
        raise InvalidProgress(f"invalid body: {problems}") from None


async def action_reply(access: TrackerAccess, action: str, raw_id: str, body: bytes) -> Reply:
    """``cancel``, ``pause`` or ``resume`` the session (:data:`ACTIONS`); the body may say why."""
    session_id = checked_id(raw_id)
    request = _action_body(body)
    session: ProgressSession
    if action == "cancel":
        session = await access.cancel(session_id, request.reason or "cancelled from the dashboard")
    elif action == "pause":
        session = await access.pause(session_id, request.reason or "paused from the dashboard")
    elif action == "resume":
        session = await access.resume(session_id)
    else:
        raise InvalidProgress(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    return _model(ActionResult.model_construct(session=summarize(session)))


def stream_request(
    params: QueryParams, last_event_id: str | None
) -> tuple[StreamFilter, int | None]:
    """What a live stream asks for: which sessions, where to resume (``Last-Event-ID`` first)."""
    watched = [checked_id(value) for value in params.getlist("session_id")]
    if len(watched) > MAX_WATCHED_SESSIONS:
        raise InvalidProgress(f"at most {MAX_WATCHED_SESSIONS} session_id parameters")
    include_new = (params.get("include_new") or "").lower() in ("1", "true", "yes")
    since: int | None = None
    resume_from = (last_event_id or "").strip()
    if resume_from:
        since = _seq(resume_from, "Last-Event-ID")
    elif params.get("since"):
        since = int_param(params, "since", 0, low=0, high=MAX_SEQ)
    return StreamFilter(frozenset(watched) if watched else None, include_new), since


def too_many_streams_reply(limit: int) -> Reply:
    """Each open stream holds a connection and a queue: past the cap, a clear refusal."""
    failure = {"error": "too_many_streams", "detail": f"at most {limit} live streams are open"}
    return Reply(failure, 503, {**NO_STORE, "retry-after": str(STREAM_RETRY_AFTER_S)})


def _seq(raw: str, what: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidProgress(f"{what} must be an event sequence number") from None
    if value < 0:
        raise InvalidProgress(f"{what} must not be negative")
    return value


async def compat_reply(answer: Awaitable[Answer]) -> Reply:
    """celery-progress's answer, or a 503 that names no host when the result backend is down."""
    try:
        body = await answer
    except ResultBackendError as exc:
        # The cause (a URL, a host) is for the log, not for the client.
        logger.warning("result backend unreadable for %s: %r", exc, exc.__cause__)
        detail_text = "the result backend could not be read"
        return Reply({"error": "result_backend_unavailable", "detail": detail_text}, 503)
    return Reply(body)
