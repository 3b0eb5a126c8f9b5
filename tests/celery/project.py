"""The Celery project the integration tests run: an app factory and its tasks.

Each test configuration (broker x store) gets its own app, with its own
queue, task-name prefix and store; the worker subprocess builds the same app
from the environment (``worker_app.py``). Task names carry the prefix, so
two configurations' apps in the test process never see each other's
dispatches.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from celery_progress_mcp.celery import ProgressRecorder, install, progress_task
from celery_progress_mcp.celery.tracker import CeleryProgressTracker

__all__ = ["Project", "ProjectConfig", "make_project"]


@dataclass(frozen=True)
class ProjectConfig:
    """What a worker and the test process share; passed to the worker as environment."""

    prefix: str
    broker: str
    backend: str
    store: str
    window_ms: int = 100
    heartbeat_timeout_s: float = 60.0
    filesystem_dir: str = ""
    visibility_timeout_s: float = 3600.0
    #: Send the integration's Celery task events; False: as the worker's ``-E`` says.
    task_events: bool = True
    #: ``worker_max_tasks_per_child`` (0: pool processes are never recycled).
    max_tasks_per_child: int = 0

    def env(self) -> dict[str, str]:
        return {
            "CPM_TEST_PREFIX": self.prefix,
            "CPM_TEST_BROKER": self.broker,
            "CPM_TEST_BACKEND": self.backend,
            "CPM_TEST_STORE": self.store,
            "CPM_TEST_WINDOW_MS": str(self.window_ms),
            "CPM_TEST_HEARTBEAT_S": str(self.heartbeat_timeout_s),
            "CPM_TEST_FS_DIR": self.filesystem_dir,
            "CPM_TEST_VISIBILITY_S": str(self.visibility_timeout_s),
            "CPM_TEST_TASK_EVENTS": "1" if self.task_events else "",
            "CPM_TEST_MAX_TASKS_PER_CHILD": str(self.max_tasks_per_child),
        }

    @classmethod
    def from_env(cls) -> ProjectConfig:
        env = os.environ
        return cls(
            prefix=env["CPM_TEST_PREFIX"],
            broker=env["CPM_TEST_BROKER"],
            backend=env["CPM_TEST_BACKEND"],
            store=env["CPM_TEST_STORE"],
            window_ms=int(env["CPM_TEST_WINDOW_MS"]),
            heartbeat_timeout_s=float(env["CPM_TEST_HEARTBEAT_S"]),
            filesystem_dir=env.get("CPM_TEST_FS_DIR", ""),
            visibility_timeout_s=float(env.get("CPM_TEST_VISIBILITY_S", "3600")),
            task_events=bool(env.get("CPM_TEST_TASK_EVENTS")),
            max_tasks_per_child=int(env.get("CPM_TEST_MAX_TASKS_PER_CHILD", "0")),
        )


@dataclass
class Project:
    config: ProjectConfig
    app: Celery
    tracker: CeleryProgressTracker
    tasks: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["tasks"][name]
        except KeyError:
            raise AttributeError(name) from None


def make_project(config: ProjectConfig) -> Project:
    app = Celery(config.prefix, broker=config.broker, backend=config.backend)
    app.conf.task_default_queue = config.prefix
    app.conf.worker_prefetch_multiplier = 1
    app.conf.broker_connection_retry_on_startup = True
    app.conf.result_expires = 600
    app.conf.worker_max_tasks_per_child = config.max_tasks_per_child or None
    options: dict[str, Any] = {"visibility_timeout": config.visibility_timeout_s}
    if config.broker.startswith("filesystem://"):
        base = Path(config.filesystem_dir)
        for name in ("messages", "control", "processed"):
            (base / name).mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(base / "messages"),
            "data_folder_out": str(base / "messages"),
            "control_folder": str(base / "control"),
            "processed_folder": str(base / "processed"),
            "store_processed": False,
            "polling_interval": 0.02,
        }
    app.conf.broker_transport_options = options
    app.conf.progress_store_url = config.store
    app.conf.progress_update_interval_ms = config.window_ms
    app.conf.progress_heartbeat_timeout_seconds = config.heartbeat_timeout_s
    app.conf.progress_poll_interval_seconds = 0.5
    app.conf.progress_task_events = config.task_events or None
    tracker = install(app)
    project = Project(config, app, tracker)
    _register_tasks(project)
    return project


def _register_tasks(project: Project) -> None:
    app = project.app
    prefix = project.config.prefix

    def task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
        def decorate(function: Callable[..., Any]) -> Any:
            registered = progress_task(app, name=f"{prefix}.{function.__name__}", **options)(
                function
            )
            project.tasks[function.__name__] = registered
            return registered

        return decorate

    @task()
    def count(self: Any, n: int, delay: float = 0.01) -> int:
        for _ in self.progress.iter(range(n), step="counting"):
            time.sleep(delay)
        return n

    @task()
    def report(self: Any, percentages: list[float], delay: float = 0.05) -> str:
        """``update()`` with the given percentages, a step and metadata each."""
        for number, percentage in enumerate(percentages, start=1):
            self.progress.update(percentage, step=f"step {number}", reported=number)
            time.sleep(delay)
        return "reported"

    @task()
    def staged(self: Any) -> str:
        self.progress.plan([("load", "Load", 1.0), ("work", "Work", 3.0)])
        with self.progress.sub_operation("load", "Load") as stage:
            for done in range(1, 5):
                stage.update(current=done, total=4)
                time.sleep(0.02)
        with self.progress.sub_operation("work", "Work", weight=3.0) as stage:
            for _ in stage.iter(range(10)):
                time.sleep(0.02)
        return "staged"

    @task()
    def stage_fails(self: Any) -> str:
        with self.progress.sub_operation("doomed", "Doomed stage"):
            raise KeyError("missing column")

    @task()
    def legacy(self: Any, n: int, delay: float = 0.02) -> int:
        """celery-progress's recorder, unchanged."""
        recorder = ProgressRecorder(self)
        for done in range(1, n + 1):
            recorder.set_progress(done, n, description=f"item {done}")
            time.sleep(delay)
        return n

    @task()
    def plain_state(self: Any) -> str:
        """``update_state`` with a plain meta, then a custom state."""
        self.update_state(state="PROGRESS", meta={"percentage": 30.0, "step": "thirty"})
        time.sleep(0.3)
        self.update_state(state="DOWNLOADING", meta={"file": "a.csv"})
        time.sleep(0.3)
        return "states"

    @task()
    def fail(self: Any) -> None:
        self.progress.update(25, step="about to fail")
        time.sleep(0.05)
        raise ValueError("this task fails on purpose")

    @task(max_retries=3)
    def flaky(self: Any, failures: int = 1) -> str:
        self.progress.update(50, step=f"attempt {self.request.retries + 1}")
        if self.request.retries < failures:
            raise self.retry(exc=ConnectionError("flaky service"), countdown=0.2)
        return f"attempt {self.request.retries + 1}"

    @task()
    def endless(self: Any) -> None:
        """Reports forever; stops only when cancelled (cooperatively or not)."""
        tick = 0
        while True:
            tick += 1
            self.progress.update(min(99.0, tick / 10), step="looping")
            time.sleep(0.02)

    @task()
    def swallow(self: Any) -> str:
        """Its ``except Exception`` must not swallow the cancellation."""
        while True:
            try:
                self.progress.update(step="busy")
                time.sleep(0.02)
            except Exception:
                return "swallowed"

    @task()
    def piece(self: Any, index: int, delay: float = 0.01) -> int:
        for _ in self.progress.iter(range(10)):
            time.sleep(delay)
        if index < 0:
            raise RuntimeError(f"piece {index} is broken")
        return index

    @task()
    def merge(self: Any, parts: list[int]) -> int:
        self.progress.update(50, step="merging")
        return sum(parts)

    @task()
    def hang(self: Any, marker: str, seconds: float = 60.0) -> str:
        """Reports once, writes its pid to ``marker``, then sleeps."""
        self.progress.update(10, step="hanging")
        Path(marker).write_text(str(os.getpid()))
        time.sleep(seconds)
        return "woke up"

    @task()
    def gated(self: Any, gate: str, percentages: list[float]) -> str:
        """Reports its first percentage, waits for the file ``gate`` (the test opens it
        when it is ready: a store stopped), then reports the rest."""
        self.progress.update(percentages[0], step="before the gate")
        deadline_s = time.monotonic() + 120
        while not Path(gate).exists() and time.monotonic() < deadline_s:
            time.sleep(0.02)
        for percentage in percentages[1:]:
            self.progress.update(percentage, step="past the gate")
            time.sleep(0.01)
        return "passed the gate"

    @task(acks_late=True, reject_on_worker_lost=True)
    def resumable(self: Any, marker: str, steps: int = 10) -> str:
        """acks_late: redelivered if its worker dies; the second run finishes."""
        first_run = not Path(marker).exists()
        Path(marker).write_text(str(os.getpid()))
        for step in range(1, steps + 1):
            self.progress.update(current=step, total=steps, step=f"step {step}")
            time.sleep(0.05)
            if first_run and step == steps // 2:
                time.sleep(60)  # the test kills the worker here
        return "resumed"

    @task()
    def burst(self: Any, n: int) -> int:
        """``n`` updates as fast as possible (with the window at 0: ``n`` events)."""
        for done in range(1, n + 1):
            self.progress.update(current=done, total=n)
        return n

    @task()
    def dispatch_time(self: Any) -> Any:
        """The dispatch time its message carried to the worker."""
        return getattr(self.request, "progress_dispatched_at", None)

    @task()
    def suicide(self: Any) -> None:
        """Kills its own pool process mid-task."""
        self.progress.update(20, step="about to die")
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
