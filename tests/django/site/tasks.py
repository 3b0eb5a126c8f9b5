"""The site's tasks: tracked, untracked (reporting as celery-progress's recorder does), failing."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

from celery_progress_mcp.celery import ProgressTask, progress_task

from .celery_app import app


@progress_task(app, name="djsite.tally")
def tally(self: Any, rows: int, pause_s: float = 0.05) -> dict[str, int]:
    """A tracked task in two stages, whose result is a JSON object."""
    self.progress.plan([("read", "Read the rows", 1), ("sum", "Sum them", 1)])
    with self.progress.sub_operation("read") as stage:
        for row in stage.iter(range(rows), total=rows):
            time.sleep(pause_s / 2)
            del row
    with self.progress.sub_operation("sum") as stage:
        for row in stage.iter(range(rows), total=rows):
            time.sleep(pause_s / 2)
            del row
    return {"processed": rows}


@app.task(bind=True, name="djsite.plain_tally")
def plain_tally(self: Any, rows: int, pause_s: float = 0.05) -> dict[str, int]:
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


@progress_task(app, name="djsite.broken")
def broken(self: Any) -> None:
    """A tracked task that fails."""
    self.progress.update(50, step="half way")
    raise ValueError("row 7 is malformed")


@shared_task(base=ProgressTask, bind=True, name="djsite.shared")
def shared(self: Any, rows: int) -> int:
    """A tracked task as a reusable Django app writes it: no app named."""
    for row in self.progress.iter(range(rows), total=rows):
        del row
    return rows
