"""The Django app's tests: the site of :mod:`.site`, set up once, and a real worker serving it.

Settings are configured here, not through ``DJANGO_SETTINGS_MODULE`` in
this process's environment: every Celery app made in this process (the
other tests' too) and every worker they start would otherwise take Celery's
Django fix-up. Only the worker started here gets the variable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

from celery_progress_mcp.testing import eventually

from ..servers import server_url

#: The site's settings module, for the processes started here.
SETTINGS_MODULE = "tests.django.site.settings"
ROOT = Path(__file__).resolve().parents[2]
#: Guard against a worker that never starts, in seconds.
WORKER_START_S = 60.0

os.environ.setdefault("DJANGO_TEST_DATA", tempfile.mkdtemp(prefix="cpm-django-"))
os.environ.setdefault("DJANGO_TEST_QUEUE", f"djsite-{uuid.uuid4().hex[:8]}")
if not settings.configured:
    from .site import settings as site_settings

    settings.configure(
        **{name: getattr(site_settings, name) for name in dir(site_settings) if name.isupper()}
    )
    django.setup()


def site_env() -> dict[str, str]:
    """What a process of the site needs to share this one's data, queue and broker."""
    return {
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DJANGO_TEST_DATA": os.environ["DJANGO_TEST_DATA"],
        "DJANGO_TEST_QUEUE": os.environ["DJANGO_TEST_QUEUE"],
        "DJANGO_TEST_BROKER": settings.CELERY_BROKER_URL,
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="session")
def celery_app() -> Any:
    from .site.celery_app import app

    return app


@pytest.fixture(autouse=True)
def current_celery_app(celery_app: Any) -> Iterator[Any]:
    """The site's app is Celery's current one, as a project's ``__init__.py`` makes it.

    celery-progress's views read ``AsyncResult(id)`` of the current app; the
    previous one is restored for the other tests.
    """
    from celery import _state

    previous = _state.get_current_app()
    _state._set_current_app(celery_app)
    yield celery_app
    _state._set_current_app(previous)


@pytest.fixture(scope="session")
def worker(celery_app: Any) -> Iterator[Any]:
    """A prefork worker of the site (Celery's Django fix-up sets Django up in it)."""
    server_url("redis")  # skips (fails in CI) without Redis
    queue = os.environ["DJANGO_TEST_QUEUE"]
    name = f"{queue}@{socket.gethostname()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.django.site.celery_app",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            queue,
            "-n",
            name,
        ],
        cwd=ROOT,
        env={**os.environ, **site_env()},
    )
    try:

        def answers_a_ping() -> Any:
            if process.poll() is not None:
                raise RuntimeError("the Celery worker exited")
            return celery_app.control.ping(destination=[name], timeout=1.0)

        eventually(answers_a_ping, timeout_s=WORKER_START_S, what="the Celery worker starting")
        yield celery_app
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
