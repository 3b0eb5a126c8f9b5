"""The site's Celery app, configured from Django's settings as Celery's Django guide does."""

from __future__ import annotations

from celery import Celery

# Not Celery's current app: the other tests' apps stay theirs.
app = Celery("djsite", set_as_current=False)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ["tests.django.site.tasks"]
