"""``create_app``: the dashboard as an ASGI app, to serve alone or mount anywhere.

::

    app = create_app(tracker)                       # uvicorn module:app
    Mount("/progress", app=create_app(tracker))     # inside Starlette or FastAPI

In a Django project, the Django app serves the same dashboard inside the
site, behind its logins (:mod:`celery_progress_mcp.django`).

Mounted under a prefix, links, the API's server URL and the login cookie's
path all follow the mount point.

Given the tracker ``install(app)`` returns, the dashboard knows the Celery
app: cancelling also revokes the task, and ``/celery-progress/<id>/``
answers for tasks without a session from the app's result backend, as
celery-progress does. ``cors_origins`` lets pages on those origins read
``/celery-progress/...`` and the JSON API's GETs (see :mod:`.cors`)::

    create_app(install(app), cors_origins=["https://app.example.com"])

``/celery-progress/<id>/stream/`` sends the same answers live (SSE), and
``/static/celery_progress_mcp/celery_progress_mcp.js`` is the browser script
with celery-progress's API that follows them (see :mod:`.scripts`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..celery.tracker import CeleryProgressTracker
from ..core.errors import ConfigError, ProgressError
from ..monitor.compat_reader import CompatReader
from ..monitor.live import DEFAULT_INTERVAL_S, DEFAULT_MAX_STREAMS, LiveHub
from ..monitor.pages import templates
from ..monitor.tracker_access import ActionHook, TrackerAccess
from ..tracking.tracker import ProgressTracker
from .api import api_routes, error_response, http_error_response
from .cors import CorsMiddleware, checked_origins
from .dashboard import Dashboard
from .metrics import DashboardMetrics
from .pages import page_routes
from .scripts import script_mount
from .security import (
    MACHINE_PREFIXES,
    AuthSettings,
    SecurityMiddleware,
    route_path,
    token_problem,
)
from .throttle import DEFAULT_FAILED_LOGIN_WINDOW_S, DEFAULT_FAILED_LOGINS, LoginThrottle

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["create_app"]


def create_app(
    tracker: ProgressTracker | CeleryProgressTracker,
    *,
    token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    cancel: ActionHook | None = None,
    allowed_hosts: Collection[str] | None = None,
    trusted_origins: Collection[str] = (),
    celery_app: Celery | None = None,
    cors_origins: Collection[str] = (),
    live_interval_s: float = DEFAULT_INTERVAL_S,
    live_source: str = "auto",
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_failed_logins: int = DEFAULT_FAILED_LOGINS,
    failed_login_window_s: float = DEFAULT_FAILED_LOGIN_WINDOW_S,
    title: str = "Celery progress",
) -> Starlette:
    """The dashboard, JSON API, SSE stream and ``/metrics`` over ``tracker``.

    ``token`` or ``basic_auth`` switch authentication on. ``cancel`` replaces
    ``tracker.cancel_session`` for the cancel button and endpoint (the Celery
    integration's cancel also revokes the task). Without authentication only
    loopback host names are served unless ``allowed_hosts`` says otherwise
    (``["*"]`` for any). ``live_interval_s`` is the coalescing interval of
    live updates: each SSE client gets at most one frame, and each session
    at most one update, per interval. ``live_source`` says where live
    updates come from: ``"bus"`` (the tracker's subscription), ``"log"``
    (polling the store's event log, for a dashboard in its own process whose
    bus is in-process only) or ``"auto"`` (the bus unless that is the case).
    ``celery_app`` (the tracker's own app when ``install`` made it) is read
    for ids without a session on ``/celery-progress/``. ``cors_origins``:
    the origins (``scheme://host[:port]``) that may read the read-only
    endpoints from their pages; none by default.

    A ``token`` is at least 16 characters without whitespace (else
    :class:`ConfigError`); it is read from the login form or the
    ``Authorization`` header, never from a query string. A client address
    that fails ``max_failed_logins`` times within ``failed_login_window_s``
    (5 per 60 s by default) is answered 429 with ``Retry-After`` until the
    window passes. At most ``max_streams`` SSE streams are open at once
    (100 by default); one more is answered 503.
    """
    if token is not None:
        problem = token_problem(token)
        if problem is not None:
            raise ConfigError(f"dashboard token refused: {problem}")
    origins = checked_origins(cors_origins)
    if isinstance(tracker, CeleryProgressTracker):
        # The dashboard works on the tracker it composes; cancelling revokes the task too.
        celery_app = celery_app or tracker.app
        tracker, cancel = tracker.tracker, cancel or tracker.cancel_session
    auth = AuthSettings(
        token=token,
        basic=basic_auth,
        allowed_hosts=allowed_hosts,
        trusted_origins=tuple(trusted_origins),
    )
    throttle = LoginThrottle(limit=max_failed_logins, window_s=failed_login_window_s)
    holder: list[DashboardMetrics] = []
    access = TrackerAccess(
        tracker, cancel=cancel, on_store_error=lambda exc: holder[0].store_errors.inc()
    )
    metrics = DashboardMetrics(access)
    holder.append(metrics)
    unsubscribe = tracker.bus.subscribe(metrics.observe)
    hub = LiveHub(access, interval_s=live_interval_s, source=live_source, max_streams=max_streams)
    board = Dashboard(
        access=access,
        hub=hub,
        metrics=metrics,
        auth=auth,
        templates=templates(),
        title=title,
        celery_progress=CompatReader(access, celery_app),
        throttle=throttle,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await access.tracker.run(access.hear_other_processes)  # it may read the store
        try:
            yield
        finally:
            hub.close()
            unsubscribe()

    async def on_progress_error(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if route_path(request.scope).startswith(MACHINE_PREFIXES):
            return http_error_response(exc.status_code, exc.headers)
        return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[
            *api_routes(board),
            *page_routes(board),
            script_mount(),  # before /static: a folder of its own
            Mount(
                "/static",
                app=StaticFiles(packages=[("celery_progress_mcp.monitor", "static")]),
                name="static",
            ),
        ],
        # CORS outermost: a listed origin can read even a refusal (a 401) as such.
        middleware=[
            Middleware(CorsMiddleware, origins=origins),
            Middleware(SecurityMiddleware, settings=auth, throttle=throttle),
        ],
        exception_handlers={
            ProgressError: on_progress_error,
            HTTPException: on_http_error,
            # Whatever else escapes: a JSON 500 that says nothing of it (it is logged).
            Exception: on_progress_error,
        },
        lifespan=lifespan,
    )
    app.state.dashboard = board
    return app
