"""A Django site for the app's tests: celery-progress's app beside this one, admin login.

Its data lives in ``DJANGO_TEST_DATA`` (its database: ``DJANGO_TEST_DATABASE``
when given) (a directory the tests share with
the worker they start), its Celery broker and result backend at
``DJANGO_TEST_BROKER`` (Redis), its tasks on ``DJANGO_TEST_QUEUE``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

DATA = Path(os.environ.get("DJANGO_TEST_DATA") or tempfile.mkdtemp(prefix="cpm-django-"))
BROKER = os.environ.get("DJANGO_TEST_BROKER", "redis://127.0.0.1:6379/0")

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "celery_progress",
    "celery_progress_mcp.django",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.django.site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA / "site.sqlite3",
        "TEST": {"NAME": DATA / "test-site.sqlite3"},
    }
}
# A test of the store's database gives its own (JSON of one DATABASES entry).
if os.environ.get("DJANGO_TEST_DATABASE"):
    DATABASES = {"default": json.loads(os.environ["DJANGO_TEST_DATABASE"])}
STATIC_URL = "/static/"
LOGIN_URL = "admin:login"

CELERY_BROKER_URL = BROKER
CELERY_RESULT_BACKEND = BROKER
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("DJANGO_TEST_QUEUE", "djsite")
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_PROGRESS = {
    "celery_app": "tests.django.site.celery_app:app",
    "update_interval_ms": 100,
    "live_interval_s": 0.1,
}
