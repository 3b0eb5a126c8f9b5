"""The site's settings: celery-progress-mcp's Django app, tracking with ``proj``'s Celery app.

* ``celery_progress_mcp.django`` in ``INSTALLED_APPS`` and its URLs under
  ``celery-progress/`` (:mod:`.urls`): celery-progress's ``<task_id>/``, and
  the dashboard for staff users, who log in with the admin's login page.
* ``CELERY_PROGRESS["celery_app"]`` names the Celery project's app: the site
  dispatches its tasks and reads their progress with the tracker
  ``proj/celery.py`` installed itself (its ``install(app)`` runs first, and
  the Django app keeps it), so that ``celery -A proj worker``, the site and
  the command line see the same sessions.
* The database is the example's SQLite file (``proj/celery.py``'s
  ``DATABASE``, in ``EXAMPLE_DATA_DIR``, else ``./.example-data``), where
  proj keeps Celery's results and the progress store: the store that
  ``CELERY_PROGRESS`` derives from ``DATABASES`` (no ``store_url``) is the one
  proj's workers write, and ``manage.py migrate`` creates or upgrades it with
  the site's tables. With servers, ``CELERY_PROGRESS_STORE_URL`` names the
  store for both.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
#: As ``proj/celery.py`` finds it (the site is not to import the Celery app from its settings).
DATA_DIR = Path(os.environ.get("EXAMPLE_DATA_DIR", ".example-data")).resolve()

# A local demo: Django's development defaults. Set DJANGO_SECRET_KEY anywhere else.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-celery-progress-mcp-example")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "celery_progress_mcp.django",
    "mysite",  # its templates and the runsite command
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "mysite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
WSGI_APPLICATION = "mysite.wsgi.application"
ASGI_APPLICATION = "mysite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "example.sqlite3",
        # The workers write progress to this file too: take the write lock when a
        # transaction begins, and wait for it, rather than fail on "database is locked".
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "admin:login"

CELERY_PROGRESS = {
    "celery_app": "proj:app",
    # None: the store of DATABASES["default"], the same file as proj's.
    "store_url": os.environ.get("CELERY_PROGRESS_STORE_URL"),
    "title": "example_project",
}
