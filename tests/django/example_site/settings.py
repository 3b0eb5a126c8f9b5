"""``mysite.settings``, with celery-progress's own app (its static ``celery_progress.js``)
and the URLs of :mod:`.urls`; nothing else changes."""

from __future__ import annotations

from pathlib import Path

from mysite.settings import *  # noqa: F403
from mysite.settings import INSTALLED_APPS, TEMPLATES

INSTALLED_APPS = [*INSTALLED_APPS, "celery_progress"]
ROOT_URLCONF = "tests.django.example_site.urls"
TEMPLATES = [{**TEMPLATES[0], "DIRS": [Path(__file__).parent / "templates"]}]
