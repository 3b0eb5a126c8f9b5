"""A real Celery worker (prefork, a subprocess) for the tests in project.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery_progress_mcp.testing import eventually

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "project_env", "running_worker"]


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


def _wait_ready(env: dict[str, str]) -> None:
    """Until the worker answers a ping on its own name (at most 60 s)."""
    check = (
        "import sys, tests.mcp.project as p; "
        "r = p.app.control.ping(destination=[sys.argv[1]], timeout=1.0); "
        "sys.exit(0 if r else 1)"
    )
    import socket

    name = f"{env['MCP_TEST_QUEUE']}@{socket.gethostname()}"

    def answers() -> bool:
        done = subprocess.run([sys.executable, "-c", check, name], cwd=ROOT, env=env, check=False)
        return done.returncode == 0

    eventually(answers, timeout_s=60, interval_s=0.5, what="the Celery worker answering a ping")
