"""For the tests on project.py: a real Celery worker (prefork), the MCP server over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from celery_progress_mcp.testing import eventually

from ..web.server import free_port

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "SCRIPT", "mcp_command", "project_env", "running_worker", "serving_http"]

#: The package's own command, as pip installs it next to this Python.
SCRIPT = Path(sys.executable).with_name("celery-progress-mcp")


def mcp_command(tools: Sequence[str], *extra: str) -> list[str]:
    """``celery-progress-mcp -A <project> mcp --tool ...``: -A on the group, as in the README."""
    allowed = [arg for name in tools for arg in ("--tool", name)]
    return [str(SCRIPT), "-A", "tests.mcp.project:app", "mcp", *allowed, *extra]


def project_env(redis_url: str, store_path: Path, *, window_ms: int = 0) -> dict[str, str]:
    """The environment the worker, the server and the test process share."""
    return {
        **os.environ,
        "MCP_TEST_BROKER": redis_url,
        "MCP_TEST_BACKEND": redis_url,
        "MCP_TEST_STORE": f"sqlite:///{store_path}",
        "MCP_TEST_QUEUE": f"mcpproj-{uuid.uuid4().hex[:8]}",
        "MCP_TEST_WINDOW_MS": str(window_ms),
        "PYTHONPATH": str(ROOT),
    }


@contextmanager
def running_worker(
    env: dict[str, str], *, concurrency: int = 4
) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker consuming the project's queue; stopped (TERM, then KILL) after."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.mcp.project",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "-Q",
        env["MCP_TEST_QUEUE"],
        "-n",
        f"{env['MCP_TEST_QUEUE']}@%h",
    ]
    # The banner goes to stderr, so a benchmark's stdout stays pure JSON.
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=2)
    try:
        _wait_ready(env)
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


@contextmanager
def serving_http(
    env: dict[str, str], tools: Sequence[str], token: str, *extra: str
) -> Iterator[str]:
    """The ``mcp`` command over HTTP, with the bearer token ``token`` and ``extra`` options."""
    port = free_port()
    command = mcp_command(tools, "--transport", "http", "--port", str(port), *extra)
    server = subprocess.Popen(command, cwd=ROOT, env={**env, "CELERY_PROGRESS_MCP_TOKEN": token})
    try:

        def listening() -> bool:
            if server.poll() is not None:
                raise RuntimeError("the MCP server exited")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return False
            return True

        eventually(listening, timeout_s=30, interval_s=0.1, what="the MCP server listening")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(20)


def _wait_ready(env: dict[str, str]) -> None:
    """Until the worker answers a ping on its own name (at most 60 s)."""
    check = (
        "import sys, tests.mcp.project as p; "
        "r = p.app.control.ping(destination=[sys.argv[1]], timeout=1.0); "
        "sys.exit(0 if r else 1)"
    )
    name = f"{env['MCP_TEST_QUEUE']}@{socket.gethostname()}"

    def answers() -> bool:
        done = subprocess.run([sys.executable, "-c", check, name], cwd=ROOT, env=env, check=False)
        return done.returncode == 0

    eventually(answers, timeout_s=60, interval_s=0.5, what="the Celery worker answering a ping")
