"""A Celery app whose tasks report progress, run by a worker thread in this process.

Until the Celery integration lands (issue 4), sessions are created at
dispatch here (``before_task_publish``) and tasks report through the
tracker directly, as the integration will; the server, the SDK client and
the worker are the real ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish

from celery_progress_mcp import InProgress, InvalidTransition, ProgressConfig, ProgressTracker

__all__ = ["TASKS", "make_app", "running_worker"]

#: The tasks the server exposes in these tests.
TASKS = ["demo.count", "demo.fail", "demo.orphan"]


def make_app(tracker: ProgressTracker, broker: str = "memory://") -> Celery:
    app = Celery("demo", broker=broker, backend="cache+memory://", set_as_current=False)
    app.conf.task_track_started = True
    # The memory transport is one broker per process: queues of their own
    # keep the apps of different test modules apart.
    queue = f"demo-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    app.conf.task_routes = {"demo.orphan": {"queue": f"{queue}-nobody-listens"}}
    app.conf.broker_transport_options = {"polling_interval": 0.01}

    def created(sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
        if sender in app.tasks and headers is not None:
            tracker.create_session(sender, session_id=headers["id"])

    # Connected for the app's life only (see ``running_worker``): apps of
    # other test modules have tasks of the same names.
    before_task_publish.connect(created, weak=False)
    app.conf.demo_publish_hook = created

    def cancelled(task_id: str) -> bool:
        return tracker.get_session(task_id).status == "cancelled"

    @app.task(bind=True, name="demo.count", shared=False)
    def count(self: Any, n: int, delay: float = 0.02, label: str = "count") -> dict[str, Any]:
        """Count to ``n``, one step every ``delay`` seconds."""
        task_id = self.request.id
        for i in range(1, n + 1):
            if cancelled(task_id):
                return {"stopped_at": i}
            time.sleep(delay)
            step = InProgress(
                percentage=100.0 * i / n,
                current_step=f"{label} {i}",
                total_steps=n,
                current_step_number=i,
            )
            try:
                tracker.update_progress(task_id, step)
            except InvalidTransition:  # cancelled meanwhile
                return {"stopped_at": i}
        tracker.complete_session(task_id, f"counted to {n}")
        return {"counted": n, "label": label}

    @app.task(bind=True, name="demo.fail", shared=False)
    def fail(self: Any, message: str = "it broke") -> int:
        """Always fails."""
        tracker.update_progress(
            self.request.id, InProgress(percentage=10.0, current_step="failing")
        )
        tracker.fail_session(self.request.id, message, "ValueError")
        raise ValueError(message)

    @app.task(name="demo.orphan", shared=False)
    def orphan() -> str:
        """Sent to a queue no worker consumes."""
        return "never"

    @app.task(name="demo.secret", shared=False)
    def secret() -> str:
        """Not on the allowlist."""
        return "secret"

    return app


@contextmanager
def running_worker(app: Celery) -> Iterator[None]:
    try:
        with start_worker(
            app, pool="threads", concurrency=12, perform_ping_check=False, loglevel="ERROR"
        ):
            yield
    finally:
        before_task_publish.disconnect(app.conf.demo_publish_hook)


def tracker() -> ProgressTracker:
    return ProgressTracker(ProgressConfig(update_interval_ms=0))
