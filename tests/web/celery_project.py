"""A Celery project for the dashboard's browser test with a real worker.

Broker, result backend, store and queue come from the environment
(``WEB_TEST_BROKER``, ``WEB_TEST_STORE``, ``WEB_TEST_QUEUE``), so the worker
process and the test process (which serves the dashboard) share them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from celery_progress_mcp.celery import install, progress_task

app = Celery(
    "webproj",
    broker=os.environ.get("WEB_TEST_BROKER", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("WEB_TEST_BROKER", "redis://127.0.0.1:6379/0"),
)
app.conf.task_default_queue = os.environ.get("WEB_TEST_QUEUE", "webproj")
app.conf.progress_store_url = os.environ.get("WEB_TEST_STORE", "sqlite:///webproj.db")
app.conf.progress_update_interval_ms = 100
app.conf.worker_prefetch_multiplier = 1
tracker = install(app)


@progress_task(app, name="webproj.crunch")
def crunch(self: Any, rows: int, pause_s: float = 0.05) -> int:
    """Work through ``rows``, reporting each; runs for rows * pause_s seconds unless cancelled."""
    for row in range(1, rows + 1):
        time.sleep(pause_s)
        self.progress.update(current=row, total=rows, step=f"row {row}")
    return rows


@progress_task(app, name="webproj.tally")
def tally(self: Any, rows: int, pause_s: float = 0.1) -> dict[str, int]:
    """A tracked task whose result is a JSON object."""
    for row in range(1, rows + 1):
        time.sleep(pause_s)
        self.progress.update(current=row, total=rows, step=f"row {row}")
    return {"processed": rows}


@app.task(bind=True, name="webproj.plain_tally")
def plain_tally(self: Any, rows: int, pause_s: float = 0.1) -> dict[str, int]:
    """An untracked task reporting as celery-progress's ProgressRecorder does."""
    for row in range(1, rows + 1):
        time.sleep(pause_s)
        meta = {
            "pending": False,
            "current": row,
            "total": rows,
            "percent": round(100 * row / rows, 2),
            "description": f"row {row}",
        }
        self.update_state(state="PROGRESS", meta=meta)
    return {"processed": rows}


@progress_task(app, name="webproj.staged")
def staged(self: Any, rows: int, pause_s: float = 0.1) -> dict[str, int]:
    """A tracked task in two stages (sub-operations), each reporting its rows."""
    stages = [("load", "Load the rows"), ("sum", "Sum the rows")]
    self.progress.plan(stages)
    for stage_id, name in stages:
        with self.progress.sub_operation(stage_id, name) as stage:
            for row in range(1, rows + 1):
                time.sleep(pause_s)
                stage.update(current=row, total=rows)
    return {"stages": len(stages), "rows": rows}


@progress_task(app, name="webproj.broken")
def broken(self: Any, rows: int, pause_s: float = 0.1) -> None:
    """A tracked task that fails after reporting its rows."""
    for row in range(1, rows + 1):
        time.sleep(pause_s)
        self.progress.update(current=row, total=rows, step=f"row {row}")
    raise ValueError(f"row {rows} is broken")
