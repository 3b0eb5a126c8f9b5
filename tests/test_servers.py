"""tests/servers.py: the environment's URL, else a server at its default address, else a skip.

``make test`` on a machine whose servers run at their default addresses runs
every server test without any environment variable; the skips that remain
are summed up per server at the end of the run, and CI turns them into
failures (issue #13, point 5).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers

ROOT = Path(__file__).resolve().parents[1]
#: A port nothing listens on (nor may, without root).
CLOSED_PORT = 1
#: Guard against a hung inner run, in seconds.
RUN_GUARD_S = 120


@pytest.fixture(autouse=True)
def _own_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """What these tests ask for stays out of the run's own summary of servers."""
    monkeypatch.setattr(servers, "_used", {})
    monkeypatch.delenv("CELERY_PROGRESS_TEST_REDIS_URL", raising=False)
    monkeypatch.delenv(servers.REQUIRE_ENV, raising=False)


def test_the_environment_url_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(servers.DEFAULT_URLS, "redis", f"redis://127.0.0.1:{CLOSED_PORT}/0")
    monkeypatch.setenv("CELERY_PROGRESS_TEST_REDIS_URL", "redis://elsewhere:6380/3")
    assert servers.server_url("redis") == "redis://elsewhere:6380/3"
    assert servers.summary_lines([]) == [
        "redis: redis://elsewhere:6380/3 (from CELERY_PROGRESS_TEST_REDIS_URL)"
    ]


def test_a_server_listening_at_its_default_address_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        monkeypatch.setitem(servers.DEFAULT_URLS, "redis", url)
        assert servers.server_url("redis") == url
    assert servers.summary_lines([]) == [
        f"redis: {url} (its default address; CELERY_PROGRESS_TEST_REDIS_URL overrides it)"
    ]


#: A run of two tests that need a Redis server where none listens.
INNER_TESTS = f"""
from tests import servers

servers.DEFAULT_URLS["redis"] = "redis://127.0.0.1:{CLOSED_PORT}/0"


def test_one():
    servers.server_url("redis")


def test_two():
    servers.server_url("redis")
"""


def _inner_run(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (directory / "conftest.py").write_text(
        "from tests.conftest import pytest_terminal_summary  # noqa: F401\n"
    )
    (directory / "test_inner.py").write_text(INNER_TESTS)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_PROGRESS_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(directory)],
        cwd=directory,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=RUN_GUARD_S,
        check=False,
    )


def test_without_a_server_its_tests_skip_and_the_end_of_the_run_says_why(
    tmp_path: Path,
) -> None:
    done = _inner_run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 skipped" in done.stdout
    summary = done.stdout.split("test servers", 1)[1]
    assert (
        f"redis: 2 tests skipped: nothing listens at 127.0.0.1:{CLOSED_PORT}"
        " and CELERY_PROGRESS_TEST_REDIS_URL is not set"
    ) in summary


def test_ci_fails_instead_of_skipping(tmp_path: Path) -> None:
    done = _inner_run(tmp_path, CELERY_PROGRESS_REQUIRE_SERVERS="1")
    assert done.returncode == 1
    assert "2 failed" in done.stdout
    assert "CELERY_PROGRESS_REQUIRE_SERVERS is set" in done.stdout
