"""The ``dashboard`` command: loopback by default, no public bind without authentication."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from celery_progress_mcp import ConfigError, ProgressConfig, ProgressTracker
from celery_progress_mcp.cli import main
from celery_progress_mcp.cli.dashboard import dashboard_command, serve
from celery_progress_mcp.testing import eventually
from tests.web.server import free_port

#: Guard against a server that never starts, in seconds.
START_GUARD_S = 30.0
#: A token the dashboard accepts (16 characters at least, no whitespace).
TOKEN = "a-token-of-enough-length"


@pytest.fixture
def tracker() -> Iterator[ProgressTracker]:
    with ProgressTracker(ProgressConfig(update_interval_ms=0)) as tracker:
        yield tracker


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "dashboard.example"])
def test_command_refuses_a_public_bind_without_auth(host: str) -> None:
    result = CliRunner().invoke(
        main, ["dashboard", "--host", host, "--store-url", "memory://"], env={}
    )
    assert result.exit_code == 2
    assert "without authentication" in result.output


def test_serve_refuses_a_public_bind_without_auth(tracker: ProgressTracker) -> None:
    with pytest.raises(ConfigError, match="without authentication"):
        serve(tracker, host="0.0.0.0", port=free_port())


def test_command_refuses_malformed_basic_auth() -> None:
    result = CliRunner().invoke(
        dashboard_command, ["--basic-auth", "nopassword", "--store-url", "memory://"], env={}
    )
    assert result.exit_code == 2
    assert "USER:PASSWORD" in result.output


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("short-token", "at least 16 characters"),
        (" " * 20, "empty or whitespace"),
        ("a token with spaces in it", "whitespace"),
        ("", "must not be empty"),
    ],
)
def test_command_refuses_a_weak_token(token: str, problem: str) -> None:
    result = CliRunner().invoke(
        dashboard_command, ["--token", token, "--store-url", "memory://"], env={}
    )
    assert result.exit_code == 2
    assert problem in result.output
    assert "--token" in result.output


@pytest.mark.parametrize("token", ["short-token", " " * 20, "tab\tinside-a-long-token"])
def test_create_app_refuses_a_weak_token(tracker: ProgressTracker, token: str) -> None:
    from celery_progress_mcp.web import create_app

    with pytest.raises(ConfigError, match="dashboard token refused"):
        create_app(tracker, token=token)


def test_command_needs_an_app_or_a_store() -> None:
    result = CliRunner().invoke(dashboard_command, [], env={})
    assert result.exit_code == 2
    assert "-A MODULE:APP" in result.output


def test_command_serves_a_store(tmp_path: Path) -> None:
    """The real command in its own process: it serves, and the token guards the API."""
    port = free_port()
    store_url = f"sqlite:///{tmp_path / 'progress.db'}"
    code = "from celery_progress_mcp.cli.dashboard import dashboard_command; dashboard_command()"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--port",
            str(port),
            "--store-url",
            store_url,
            "--token",
            TOKEN,
            "--log-level",
            "warning",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def answer() -> httpx.Response:
            if process.poll() is not None:
                raise RuntimeError(f"the dashboard exited: {process.communicate()[1]}")
            try:
                return httpx.get(f"{url}/api/stats")
            except httpx.TransportError as exc:
                raise AssertionError(f"not serving yet: {exc}") from exc

        refused = eventually(answer, timeout_s=START_GUARD_S, what="the dashboard serving")
        assert refused.status_code == 401
        stats = httpx.get(f"{url}/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
        assert stats.status_code == 200
        assert stats.json()["total_created"] == 0
    finally:
        process.terminate()
        process.wait(timeout=20)
