"""The site's page: a button that starts the example's pipeline, then its bar, live.

The bar is the app's template tag (``{% progress_bar task_id %}``): markup
that ``celery_progress_mcp.js`` follows, the pipeline's stages drawn under it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from proj.tasks import pipeline as pipeline_task

__all__ = ["index", "pipeline", "start_pipeline"]


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The button (a POST form) and the link to the dashboard."""
    return render(request, "mysite/index.html")


@require_POST
def start_pipeline(request: HttpRequest) -> HttpResponse:
    """Dispatch the pipeline, then show it (its page is safe to reload)."""
    result = pipeline_task.delay()
    return redirect("pipeline", task_id=result.id)


@require_GET
def pipeline(request: HttpRequest, task_id: str) -> HttpResponse:
    """The pipeline's bar, followed live by the page's script."""
    return render(request, "mysite/pipeline.html", {"task_id": task_id})
