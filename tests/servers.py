"""Server URLs for tests, from the environment.

A test that needs a server calls ``server_url("postgres")``: it returns the
URL from ``CELERY_PROGRESS_TEST_POSTGRES_URL`` or skips with a visible reason.
CI sets ``CELERY_PROGRESS_REQUIRE_SERVERS=1``: then such a skip fails the
test instead, so CI always exercises the real servers.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["SERVER_SKIP_PREFIX", "server_url"]

#: Every skip for a missing server starts with this, so conftest can spot it.
SERVER_SKIP_PREFIX = "needs a server:"

_ENV = {
    "postgres": "CELERY_PROGRESS_TEST_POSTGRES_URL",
    "mysql": "CELERY_PROGRESS_TEST_MYSQL_URL",
    "redis": "CELERY_PROGRESS_TEST_REDIS_URL",
    "rabbitmq": "CELERY_PROGRESS_TEST_RABBITMQ_URL",
}


def server_url(kind: str) -> str:
    variable = _ENV[kind]
    url = os.environ.get(variable)
    if not url:
        message = f"{SERVER_SKIP_PREFIX} set {variable} to run this test against {kind}"
        if os.environ.get("CELERY_PROGRESS_REQUIRE_SERVERS"):
            pytest.fail(message + " (CELERY_PROGRESS_REQUIRE_SERVERS is set)")
        pytest.skip(message)
    return url
