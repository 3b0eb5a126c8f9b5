"""A Celery project as a user writes it, for the MCP tests with a real worker.

Its broker, result backend, store and queue come from the environment
(``MCP_TEST_BROKER``, ``MCP_TEST_BACKEND``, ``MCP_TEST_STORE``,
``MCP_TEST_QUEUE``), so the worker, the MCP server and the test process
share them.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from celery import Celery

from celery_progress_mcp.celery import install, progress_task

app = Celery(
    "mcpproj",
    broker=os.environ.get("MCP_TEST_BROKER", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("MCP_TEST_BACKEND", "redis://127.0.0.1:6379/0"),
)
app.conf.task_default_queue = os.environ.get("MCP_TEST_QUEUE", "mcpproj")
app.conf.progress_store_url = os.environ.get("MCP_TEST_STORE", "sqlite:///mcpproj.db")
app.conf.progress_update_interval_ms = int(os.environ.get("MCP_TEST_WINDOW_MS", "0"))
app.conf.worker_prefetch_multiplier = 1
tracker = install(app)


@progress_task(app, name="mcpproj.count")
def count(self: Any, n: int, delay: float = 0.02, label: str = "count") -> dict[str, Any]:
    """Count to ``n``, one step every ``delay`` seconds, reporting each step."""
    for i in range(1, n + 1):
        time.sleep(delay)
        self.progress.update(current=i, total=n, step=f"{label} {i}")
    return {"counted": n, "label": label}


@progress_task(app, name="mcpproj.fail")
def fail(self: Any, message: str = "it broke") -> int:
    """Always fails."""
    self.progress.update(10, step="failing")
    raise ValueError(message)


@progress_task(app, name="mcpproj.stamp")
def stamp(self: Any, n: int) -> int:
    """For the latency benchmark: sends ``n`` updates, each carrying its wall time."""
    for i in range(1, n + 1):
        self.progress.update(current=i, total=n, step=repr(time.time()))
        time.sleep(0.005)
    return n


@progress_task(app, name="mcpproj.die")
def die(self: Any) -> int:
    """Kills the pool process running it, as the OOM killer would."""
    self.progress.update(5, step="about to die")
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


@progress_task(app, name="mcpproj.sleepy")
def sleepy(self: Any, seconds: float = 60.0) -> str:
    """Reports once, then sleeps without reporting: only terminating stops it."""
    self.progress.update(1, step="sleeping")
    time.sleep(seconds)
    return "woke up"


@app.task(name="mcpproj.add")
def add(a: int, b: int) -> int:
    """Adds two numbers (a plain, untracked task)."""
    return a + b


@progress_task(app, name="mcpproj.secret")
def secret(self: Any) -> str:
    """Not on the allowlist."""
    return "secret"
