"""The JSON API, the SSE streams, ``/metrics`` and the celery-progress endpoints, on Starlette.

The answers themselves are framework-neutral (:mod:`..monitor.api`); here
they become Starlette responses. Errors answer
:class:`~..monitor.schemas.ErrorResponse` with a status from the package's
hierarchy (see :func:`error_response`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..monitor.api import (
    ACTIONS,
    NO_STORE,
    Reply,
    action_reply,
    compat_reply,
    error_reply,
    events_reply,
    http_error_reply,
    session_reply,
    sessions_reply,
    stats_reply,
    stream_request,
    too_many_streams_reply,
)
from ..monitor.compat_stream import open_compat_stream
from ..monitor.params import checked_task_id
from .dashboard import Dashboard, dashboard_of
from .metrics import CONTENT_TYPE
from .openapi import openapi_document

__all__ = ["api_routes", "error_response", "http_error_response"]

#: Every live stream's headers: never cached, never buffered by a proxy (nginx).
_SSE_HEADERS: Mapping[str, str] = {"cache-control": "no-store", "x-accel-buffering": "no"}


def _response(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, reply.status, headers=dict(reply.headers))


def error_response(exc: Exception) -> JSONResponse:
    """The package's errors as JSON responses (see :func:`..monitor.api.error_reply`)."""
    return _response(error_reply(exc))


def http_error_response(status: int, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The router's own errors (no such route, wrong method) as the API's JSON errors."""
    return _response(http_error_reply(status, headers))


async def list_sessions(request: Request) -> Response:
    return _response(await sessions_reply(dashboard_of(request).access, request.query_params))


async def get_session(request: Request) -> Response:
    access = dashboard_of(request).access
    return _response(await session_reply(access, request.path_params["session_id"]))


async def session_events(request: Request) -> Response:
    access, session_id = dashboard_of(request).access, request.path_params["session_id"]
    return _response(await events_reply(access, session_id, request.query_params))


async def get_stats(request: Request) -> Response:
    return _response(await stats_reply(dashboard_of(request).access))


def _action(name: str) -> Route:
    async def act(request: Request) -> Response:
        access, session_id = dashboard_of(request).access, request.path_params["session_id"]
        return _response(await action_reply(access, name, session_id, await request.body()))

    act.__name__ = f"{name}_session"
    return Route(f"/api/sessions/{{session_id:path}}/{name}", act, methods=["POST"])


async def events_stream(request: Request) -> Response:
    board = dashboard_of(request)
    stream_filter, since = stream_request(
        request.query_params, request.headers.get("last-event-id")
    )
    stream = await board.hub.open_stream(stream_filter, since)
    if stream is None:
        return _response(too_many_streams_reply(board.hub.max_streams))
    return _event_stream(stream)


def _event_stream(opened: AsyncIterator[bytes] | Reply) -> Response:
    if isinstance(opened, Reply):
        return _response(opened)
    return StreamingResponse(opened, media_type="text/event-stream", headers=dict(_SSE_HEADERS))


async def metrics(request: Request) -> Response:
    board = dashboard_of(request)

    def render() -> bytes:
        board.access.hear_other_processes()  # a mounted app gets no lifespan: the first scrape
        return board.metrics.render()

    body = await board.access.tracker.run(render)
    return Response(body, media_type=CONTENT_TYPE, headers=dict(NO_STORE))


async def openapi(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    return JSONResponse(openapi_document(root), headers=dict(NO_STORE))


async def celery_progress(request: Request) -> Response:
    """celery-progress's ``/celery-progress/<task_id>/``, for any id (:mod:`..monitor.compat`)."""
    task_id = checked_task_id(request.path_params["task_id"])
    return _response(await compat_reply(dashboard_of(request).celery_progress.task(task_id)))


async def celery_group_progress(request: Request) -> Response:
    """celery-progress's ``/celery-progress/g/<group_id>/``; 404 for a group nothing knows."""
    group_id = checked_task_id(request.path_params["group_id"])
    return _response(await compat_reply(dashboard_of(request).celery_progress.group(group_id)))


async def celery_progress_stream(request: Request) -> Response:
    """``/celery-progress/<task_id>/stream/``: the same answers, live.

    See :mod:`..monitor.compat_stream`.
    """
    task_id = checked_task_id(request.path_params["task_id"])
    board = dashboard_of(request)
    return _event_stream(
        await open_compat_stream(board.hub, board.access, board.celery_progress, task_id)
    )


async def celery_group_progress_stream(request: Request) -> Response:
    """``/celery-progress/g/<group_id>/stream/``: a group's answers, live."""
    group_id = checked_task_id(request.path_params["group_id"])
    board = dashboard_of(request)
    return _event_stream(
        await open_compat_stream(
            board.hub, board.access, board.celery_progress, group_id, group=True
        )
    )


def api_routes(board: Dashboard) -> list[BaseRoute]:
    del board  # routes find the dashboard on the request; kept for symmetry with pages
    return [
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route("/api/sessions", list_sessions, methods=["GET"]),
        # Ids may hold "/": the sub-resources come first, the bare id last.
        Route("/api/sessions/{session_id:path}/events", session_events, methods=["GET"]),
        *(_action(name) for name in ACTIONS),
        Route("/api/sessions/{session_id:path}", get_session, methods=["GET"]),
        Route("/api/stats", get_stats, methods=["GET"]),
        Route("/api/events", events_stream, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/celery-progress/{task_id}/", celery_progress, methods=["GET"]),
        # Before the task's stream: "g/<id>/" is a group, as in celery-progress's URLs.
        Route("/celery-progress/g/{group_id}/", celery_group_progress, methods=["GET"]),
        Route("/celery-progress/{task_id}/stream/", celery_progress_stream, methods=["GET"]),
        Route(
            "/celery-progress/g/{group_id}/stream/",
            celery_group_progress_stream,
            methods=["GET"],
        ),
    ]
