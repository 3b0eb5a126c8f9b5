"""The example site's URLs, and the migration page: ``migration/<task_id>/``.

That page holds two frames, each the page celery-progress's README has a
user write (its markup, and ``CeleryProgressBar.initProgressBar`` on the
task's URL) with one script: celery-progress's own ``celery_progress.js``
in one, this project's ``celery_progress_mcp.js`` in the other. Both
scripts define ``CeleryProgressBar``, hence a document each.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import re_path
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET
from mysite.urls import urlpatterns as site_urlpatterns

#: Each frame's script, by the name the URL gives it.
SCRIPTS = {
    "celery_progress": "celery_progress/celery_progress.js",
    "celery_progress_mcp": "celery_progress_mcp/celery_progress_mcp.js",
}


@require_GET
def both(request: HttpRequest, task_id: str) -> HttpResponse:
    return render(request, "migration/both.html", {"task_id": task_id, "scripts": list(SCRIPTS)})


@require_GET
@xframe_options_sameorigin
def bar(request: HttpRequest, task_id: str, script: str) -> HttpResponse:
    context = {"task_id": task_id, "script": script, "script_path": SCRIPTS[script]}
    return render(request, "migration/bar.html", context)


urlpatterns = [
    *site_urlpatterns,
    re_path(r"^migration/(?P<task_id>[\w-]+)/$", both, name="migration"),
    re_path(
        rf"^migration/(?P<task_id>[\w-]+)/(?P<script>{'|'.join(SCRIPTS)})/$",
        bar,
        name="migration_bar",
    ),
]
