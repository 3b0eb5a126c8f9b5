"""celery-progress's URLs and this app's, side by side, and the admin (its login page)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("celery-progress/", include("celery_progress.urls")),
    path("progress/", include("celery_progress_mcp.django.urls")),
]
