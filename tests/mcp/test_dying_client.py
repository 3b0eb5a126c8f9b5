"""A stdio client killed mid-call: the server ends quietly, with one line on its stderr."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from celery_progress_mcp.mcp.cancel_reasons import CLIENT_GONE_REASON
from celery_progress_mcp.testing import eventually

from ..servers import server_url
from .realworker import ROOT, SCRIPT, mcp_command, project_env, running_worker

#: How long the server may take to notice its client is gone and exit, in seconds.
EXIT_TIMEOUT_S = 60


def kill_the_client_mid_call(tool: str, *server: str, env: dict[str, str] | None = None) -> str:
    """Start the client, kill it once progress flows, and return the server's stderr."""
    client = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp.dying_client", tool, *server],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert client.stdout is not None
    server_pid = int(client.stdout.readline())  # the call's progress is flowing
    client.send_signal(signal.SIGKILL)
    # The server writes to the client's stderr: it reaches its end when the server exits.
    _, err = client.communicate(timeout=EXIT_TIMEOUT_S)
    assert client.returncode == -signal.SIGKILL
    # Its stderr closes as it exits: the rest of the exit follows.
    eventually(lambda: _gone(server_pid), timeout_s=EXIT_TIMEOUT_S, what="the server exiting")
    return err.decode()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")  # exited, not yet reaped
    except FileNotFoundError:
        return True


def assert_one_line_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "ExceptionGroup" not in stderr, stderr
    gone = [line for line in stderr.splitlines() if "MCP client gone" in line]
    assert len(gone) == 1, stderr


def test_a_client_killed_mid_call_leaves_one_log_line_and_no_traceback() -> None:
    assert_one_line_no_traceback(kill_the_client_mid_call("demo.count"))


@pytest.mark.server
@pytest.mark.slow
def test_the_command_ends_the_dead_clients_call_cancelled(tmp_path: Path) -> None:
    pytest.importorskip("celery_progress_mcp.celery", reason="no Celery integration")
    env = project_env(server_url("redis"), tmp_path / "progress.db")
    with running_worker(env, concurrency=1):
        stderr = kill_the_client_mid_call("mcpproj.count", *mcp_command(["mcpproj.count"]), env=env)

        def cancelled() -> list[dict[str, Any]]:
            listed = subprocess.run(
                [
                    str(SCRIPT),
                    "-A",
                    "tests.mcp.project:app",
                    "sessions",
                    "list",
                    "--json",
                    "--status",
                    "cancelled",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                check=True,
                text=True,
            )
            sessions: list[dict[str, Any]] = json.loads(listed.stdout)
            assert sessions
            return sessions

        sessions = eventually(cancelled, timeout_s=30, what="the dead client's call cancelled")
    assert_one_line_no_traceback(stderr)
    assert [s["operation_id"] for s in sessions] == ["mcpproj.count"]
    assert sessions[0]["state"]["reason"] == CLIENT_GONE_REASON
