"""``{% load celery_progress_mcp %}{% progress_bar task_id %}``: a live bar for a task or a group.

The bar is markup that the app's script (``celery_progress_mcp.js``, with
celery-progress's API) finds and follows: the task's answer live over its
stream, else by polling ``<task_id>/``; its sub-operations (a pipeline's
stages, a group's members) as nested bars. No inline script or style: it
works under a strict Content-Security-Policy.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

__all__ = ["progress_bar", "register"]

register = template.Library()


@register.inclusion_tag("celery_progress_mcp/progress_bar.html")
def progress_bar(task_id: str, *, group: bool = False, label: str = "") -> dict[str, Any]:
    """A bar for ``task_id`` (``group=True``: a group's id); ``label`` names it for readers."""
    name = "celery_progress_mcp:group_status" if group else "celery_progress_mcp:task_status"
    kwargs = {"group_id": task_id} if group else {"task_id": task_id}
    return {"progress_url": reverse(name, kwargs=kwargs), "task_id": task_id, "label": label}
