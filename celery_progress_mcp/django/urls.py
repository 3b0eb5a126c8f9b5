"""The URLs: celery-progress's, and the dashboard's, under one include.

::

    urlpatterns = [
        path("celery-progress/", include("celery_progress_mcp.django.urls")),
    ]

replaces ``include("celery_progress.urls")``: ``<task_id>/`` and
``g/<group_id>/`` answer as celery-progress's do, under the same names
(``task_status``, ``group_status``). To keep templates that reverse
``celery_progress:task_status`` unchanged, include it with
``namespace="celery_progress"``. Beside them: the dashboard
(``dashboard/``, for staff users), its JSON API (``api/...``) and live
streams: ``<task_id>/stream/`` and ``g/<group_id>/stream/`` (celery-progress's
answers as they change, open as the polling URLs are) and ``api/events``.
"""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from . import api_views, compat_views, page_views

__all__ = ["app_name", "urlpatterns"]

app_name = "celery_progress_mcp"

#: A task or group id as celery-progress's URLs take it.
_ID = r"[\w-]+"

urlpatterns: list[URLPattern] = [
    # The dashboard and its API first: "dashboard" and "api" would match a task id.
    path("dashboard/", page_views.dashboard, name="dashboard"),
    path("dashboard/static/<str:name>", page_views.static_file, name="dashboard_static"),
    # Ids may hold "/": the sub-resources come first, the bare id last.
    path(
        "dashboard/sessions/<path:session_id>/history.svg",
        page_views.session_chart,
        name="session_chart",
    ),
    path("dashboard/sessions/<path:session_id>", page_views.session_page, name="session"),
    path("api/sessions", api_views.sessions, name="api_sessions"),
    path(
        "api/sessions/<path:session_id>/events", api_views.session_events, name="api_session_events"
    ),
    re_path(
        r"^api/sessions/(?P<session_id>.+)/(?P<action>cancel|pause|resume)$",
        api_views.act,
        name="api_action",
    ),
    path("api/sessions/<path:session_id>", api_views.session, name="api_session"),
    path("api/stats", api_views.stats, name="api_stats"),
    path("api/events", api_views.events_stream, name="api_events"),
    # celery-progress's own, by its names.
    re_path(rf"^g/(?P<group_id>{_ID})/$", compat_views.group_status, name="group_status"),
    re_path(rf"^g/(?P<group_id>{_ID})/stream/$", compat_views.group_stream, name="group_stream"),
    re_path(rf"^(?P<task_id>{_ID})/$", compat_views.task_status, name="task_status"),
    re_path(rf"^(?P<task_id>{_ID})/stream/$", compat_views.task_stream, name="task_stream"),
]
