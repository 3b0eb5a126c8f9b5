"""The site's URLs: its page, the admin (whose login opens the dashboard), celery-progress-mcp's.

``celery-progress/`` is where a celery-progress user had
``include("celery_progress.urls")``: the same ``<task_id>/`` answers, and the
dashboard at ``celery-progress/dashboard/``.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("pipelines/", views.start_pipeline, name="start_pipeline"),
    # A task id as celery-progress's URLs take it: anything else is a 404.
    re_path(r"^pipelines/(?P<task_id>[\w-]+)/$", views.pipeline, name="pipeline"),
    path("admin/", admin.site.urls),
    path("celery-progress/", include("celery_progress_mcp.django.urls")),
]
