"""celery-progress's endpoints: ``<task_id>/`` and ``g/<group_id>/``, the same JSON.

Open to anyone who knows the id, as celery-progress's views are; the
answers come from :class:`~..monitor.compat_reader.CompatReader` (the
session while the task runs, the result backend for untracked tasks).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from ..core.errors import SessionNotFound
from ..monitor.api import compat_reply
from ..monitor.compat_stream import open_compat_stream
from ..monitor.params import checked_task_id
from .responses import json_response, stream_response
from .runtime import runtime

__all__ = ["group_status", "group_stream", "task_status", "task_stream"]


def _checked(raw: str) -> str:
    try:
        return checked_task_id(raw)
    except SessionNotFound:
        raise Http404("no such task") from None


@require_GET
async def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """celery-progress's ``get_progress``: the task's progress, state and result."""
    reader = runtime().celery_progress
    return json_response(await compat_reply(reader.task(_checked(task_id))))


@require_GET
async def group_status(request: HttpRequest, group_id: str) -> JsonResponse:
    """celery-progress's ``get_group_progress``: the members' progress summed; 404 if unknown."""
    reader = runtime().celery_progress
    try:
        return json_response(await compat_reply(reader.group(_checked(group_id))))
    except SessionNotFound:
        raise Http404("no such group") from None


@require_GET
async def task_stream(request: HttpRequest, task_id: str) -> HttpResponse | StreamingHttpResponse:
    """``<task_id>/stream/``: the same answers, live (SSE), as the app's script follows them.

    Each message is the polling endpoint's answer, plus the session's
    ``sub_operations``; the stream ends with the task.
    """
    here = runtime()
    opened = open_compat_stream(here.hub, here.access, here.celery_progress, _checked(task_id))
    return await stream_response(request, opened)


@require_GET
async def group_stream(request: HttpRequest, group_id: str) -> HttpResponse | StreamingHttpResponse:
    """``g/<group_id>/stream/``: a group's answers, live; 404 if nothing knows the group."""
    here = runtime()
    checked = _checked(group_id)
    try:
        opened = open_compat_stream(
            here.hub, here.access, here.celery_progress, checked, group=True
        )
        return await stream_response(request, opened)
    except SessionNotFound:
        raise Http404("no such group") from None
