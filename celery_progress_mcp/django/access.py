"""Who may see the dashboard and its API: Django's own users.

Staff users by default; ``CELERY_PROGRESS["permission"]`` names a
permission to require instead (superusers have every permission). Pages
send an anonymous user to the site's login page (``settings.LOGIN_URL``)
and answer a user without the right 403; the JSON API answers both 403
with the API's JSON error, as an API under session authentication does.

celery-progress's endpoints (``<task_id>/``, ``g/<group_id>/`` and their
streams) stay open, as celery-progress's are: knowing a task's id is what
lets a page show its bar.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from ..monitor.api import NO_STORE
from .conf import dashboard_permission

__all__ = ["allowed", "api_user_required", "page_user_required"]

View = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def allowed(user: Any, permission: str | None) -> bool:
    """May ``user`` see the dashboard? Staff, or holders of ``permission`` when one is set."""
    if not user.is_authenticated or not user.is_active:
        return False
    if permission is None:
        return bool(user.is_staff)
    return bool(user.has_perm(permission))


async def _user_allowed(request: HttpRequest) -> tuple[bool, bool]:
    """(authenticated, allowed) for the request's user."""
    user = await request.auser()
    permission = dashboard_permission()
    return bool(user.is_authenticated), await sync_to_async(allowed)(user, permission)


def page_user_required(view: View) -> View:
    """Pages: anonymous users go to the login page, others without the right get a 403."""

    @functools.wraps(view)
    async def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        authenticated, ok = await _user_allowed(request)
        if not authenticated:
            return redirect_to_login(request.get_full_path())
        if not ok:
            raise PermissionDenied("the dashboard is for staff users")
        return await view(request, *args, **kwargs)

    return guarded


def api_user_required(view: View) -> View:
    """The JSON API: 403 with a JSON error for anonymous users and those without the right."""

    @functools.wraps(view)
    async def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        authenticated, ok = await _user_allowed(request)
        if not ok:
            detail = "permission denied" if authenticated else "log in first"
            return JsonResponse(
                {"error": "forbidden", "detail": detail}, status=403, headers=dict(NO_STORE)
            )
        return await view(request, *args, **kwargs)

    return guarded
