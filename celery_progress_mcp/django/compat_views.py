"""celery-progress's endpoints: ``<task_id>/`` and ``g/<group_id>/``, the same JSON.

Open to anyone who knows the id, as celery-progress's views are; the
answers come from :class:`~..monitor.compat_reader.CompatReader` (the
session while the task runs, the result backend for untracked tasks).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from ..core.errors import SessionNotFound
from ..monitor.api import compat_reply
from ..monitor.params import checked_task_id
from .responses import json_response
from .runtime import runtime

__all__ = ["group_status", "task_status"]


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
