"""The ``dashboard`` command: loopback by default, no public bind without authentication."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from celery_progress_mcp import ConfigError, ProgressTracker
from celery_progress_mcp.web.command import dashboard_command, is_loopback, serve

from .server import free_port

#: Guard against a server that never starts, in seconds.
START_GUARD_S = 30.0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "dashboard.example"])
def test_command_refuses_a_public_bind_without_auth(host: str) -> None:
    from celery_progress_mcp.cli import main

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


def test_command_needs_an_app_or_a_store() -> None:
    result = CliRunner().invoke(dashboard_command, [], env={})
    assert result.exit_code == 2
    assert "-A MODULE:APP" in result.output


def test_command_serves_a_store(tmp_path: Path) -> None:
    """The real command in its own process: it serves, and the token guards the API."""
    port = free_port()
    store_url = f"sqlite:///{tmp_path / 'progress.db'}"
    code = "from celery_progress_mcp.web.command import dashboard_command; dashboard_command()"
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
            "tok",
            "--log-level",
            "warning",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_GUARD_S
        while True:
            try:
                refused = httpx.get(f"{url}/api/stats")
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert refused.status_code == 401
        stats = httpx.get(f"{url}/api/stats", headers={"Authorization": "Bearer tok"})
        assert stats.status_code == 200
        assert stats.json()["total_created"] == 0
    finally:
        process.terminate()
        process.wait(timeout=20)
