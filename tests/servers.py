"""Server URLs for tests: from the environment, else the server's default local address.

A test that needs a server calls ``server_url("postgres")``. The URL is
``CELERY_PROGRESS_TEST_POSTGRES_URL`` when set; else the server's default
address on this machine (``DEFAULT_URLS``) when something listens there (one
quick TCP connect per address and run); else the test skips with a visible
reason, and :func:`summary_lines` sums the skips up per server at the end of
the run (tests/conftest.py). CI sets ``CELERY_PROGRESS_REQUIRE_SERVERS=1``:
then such a skip fails the test instead, so CI always exercises the real
servers.
"""

from __future__ import annotations

import functools
import os
import socket
from collections import Counter
from collections.abc import Iterable
from urllib.parse import urlsplit

import pytest

__all__ = ["DEFAULT_URLS", "SERVER_SKIP_PREFIX", "server_url", "summary_lines"]

#: Every skip for a missing server starts with this, then the server's kind and ":".
SERVER_SKIP_PREFIX = "needs a server:"
#: Set (to anything) to fail instead of skipping a test whose server is missing.
REQUIRE_ENV = "CELERY_PROGRESS_REQUIRE_SERVERS"
#: How long a connect to a default address may take before nothing counts as there, in s.
PROBE_TIMEOUT_S = 0.5

_ENV = {
    "postgres": "CELERY_PROGRESS_TEST_POSTGRES_URL",
    "mysql": "CELERY_PROGRESS_TEST_MYSQL_URL",
    "redis": "CELERY_PROGRESS_TEST_REDIS_URL",
    "rabbitmq": "CELERY_PROGRESS_TEST_RABBITMQ_URL",
}
#: Each server at its default local address, as a fresh install of it listens.
DEFAULT_URLS = {
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}

#: The URL each server kind was given as in this run, and where it came from.
_used: dict[str, str] = {}


@functools.cache
def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def server_url(kind: str) -> str:
    """The URL of a ``kind`` server for this test, or a skip (a failure in CI) saying why."""
    variable = _ENV[kind]
    url = os.environ.get(variable)
    if url:
        _used[kind] = f"{url} (from {variable})"
        return url
    default = DEFAULT_URLS[kind]
    address = urlsplit(default)
    assert address.hostname is not None
    assert address.port is not None
    if _listening(address.hostname, address.port):
        _used[kind] = f"{default} (its default address; {variable} overrides it)"
        return default
    message = (
        f"{SERVER_SKIP_PREFIX} {kind}: nothing listens at {address.hostname}:{address.port}"
        f" and {variable} is not set"
    )
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{message} ({REQUIRE_ENV} is set)")
    pytest.skip(message)


def _skipped_server(report: pytest.TestReport) -> tuple[str, str] | None:
    """``(kind, why)`` when ``report`` is a skip for want of a server."""
    if not isinstance(report.longrepr, tuple):
        return None
    reason = report.longrepr[2].removeprefix("Skipped: ")
    if not reason.startswith(SERVER_SKIP_PREFIX):
        return None
    kind, _, why = reason.removeprefix(SERVER_SKIP_PREFIX).strip().partition(": ")
    return kind, why


def summary_lines(skipped: Iterable[pytest.TestReport]) -> list[str]:
    """One line per server asked for in this run: the URL used, or the tests skipped and why."""
    counts: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for report in skipped:
        found = _skipped_server(report)
        if found is not None:
            kind, why = found
            counts[kind] += 1
            reasons[kind] = why
    lines = []
    for kind in _ENV:
        if kind in counts:
            tests = "test" if counts[kind] == 1 else "tests"
            lines.append(f"{kind}: {counts[kind]} {tests} skipped: {reasons[kind]}")
        elif kind in _used:
            lines.append(f"{kind}: {_used[kind]}")
    return lines
