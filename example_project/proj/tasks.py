"""The example's tasks, written as a user of celery-progress-mcp would.

* ``process_file``: the seed's file processing: reads a real CSV, reports by
  batches of lines; the ETA comes from the rate of progress.
* ``pipeline``: a multi-stage pipeline whose stages are sub-operations; its
  "process" stage runs a chord of ``process_chunk`` workers whose results
  ``merge_totals`` merges, and mirrors the chord's progress.
* ``fail_on_purpose``: fails half-way, so a Failed session can be seen.
* ``flaky``: fails twice, retries, then succeeds.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

from celery import chord

from celery_progress_mcp import progress_task

from .celery import DATA_DIR, app, tracker
from .data import count_rows, generate_csv, read_rows, split_csv

#: Rows handled between two progress reports.
BATCH_ROWS = 250
#: Simulated work per batch, so that progress can be watched.
BATCH_WORK_S = 0.04


def _aggregate(rows: list[dict[str, str]], totals: Counter[str]) -> None:
    for row in rows:
        totals[row["country"]] += int(row["amount_cents"])
    time.sleep(BATCH_WORK_S)


@progress_task(app)
def process_file(self: Any, path: str, batch_rows: int = BATCH_ROWS) -> dict[str, int]:
    """Sum the orders of a CSV by country, reporting after each batch of lines."""
    source = Path(path)
    total = count_rows(source)
    batches = -(-total // batch_rows) or 1
    totals: Counter[str] = Counter()
    rows = read_rows(source)
    done = 0
    for number in range(1, batches + 1):
        batch = list(islice(rows, batch_rows))
        _aggregate(batch, totals)
        done += len(batch)
        self.progress.update(
            current=done, total=total, step=f"batch {number}/{batches}", rows_done=done
        )
    return dict(totals)


@progress_task(app)
def process_chunk(self: Any, path: str) -> dict[str, int]:
    """One chord member: the totals of one chunk of the file."""
    totals: Counter[str] = Counter()
    rows = list(read_rows(Path(path)))
    for start in range(0, len(rows), BATCH_ROWS):
        _aggregate(rows[start : start + BATCH_ROWS], totals)
        self.progress.update(current=min(start + BATCH_ROWS, len(rows)), total=len(rows))
    return dict(totals)


@progress_task(app)
def merge_totals(self: Any, parts: list[dict[str, int]]) -> dict[str, int]:
    """The chord's callback: merge the chunks' totals."""
    merged: Counter[str] = Counter()
    for part in self.progress.iter(parts, step="merging"):
        merged.update(part)
        time.sleep(0.05)
    return dict(merged)


@progress_task(app)
def pipeline(self: Any, rows: int = 20_000, chunks: int = 8) -> dict[str, Any]:
    """Generate, validate, split, process (a chord), report: each stage a sub-operation."""
    work = DATA_DIR / "pipeline" / self.request.id
    source = work / "orders.csv"
    progress = self.progress
    progress.plan(
        [
            ("generate", "Generate the CSV", 1.0),
            ("validate", "Validate the rows", 1.0),
            ("split", "Split into chunks", 1.0),
            ("process", "Process the chunks (a chord)", 6.0),
            ("report", "Write the report", 1.0),
        ]
    )
    with progress.sub_operation("generate", "Generate the CSV") as stage:
        generate_csv(
            source, rows, on_progress=lambda done, total: stage.update(current=done, total=total)
        )
    with progress.sub_operation("validate", "Validate the rows") as stage:
        for row in stage.iter(read_rows(source), total=rows):
            if int(row["amount_cents"]) <= 0:
                raise ValueError(f"order {row['order_id']} has no amount")
    with progress.sub_operation("split", "Split into chunks"):
        parts = split_csv(source, chunks)
    with progress.sub_operation("process", "Process the chunks (a chord)", weight=6) as stage:
        result = chord(process_chunk.s(str(part)) for part in parts)(merge_totals.s())
        while True:
            progress.raise_if_cancelled()
            session = tracker.session_for(result)
            stage.update(session.percentage)
            if session.state.status in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.2)
        if session.state.status != "completed":
            raise RuntimeError(f"the chord ended {session.state.status}")
        totals = result.get(disable_sync_subtasks=False, timeout=60)
    with progress.sub_operation("report", "Write the report"):
        report = work / "report.json"
        report.write_text(json.dumps(totals, indent=2, sort_keys=True), encoding="utf-8")
    return {"rows": rows, "countries": len(totals), "report": str(report)}


@progress_task(app)
def fail_on_purpose(self: Any, steps: int = 10) -> None:
    """Fails at 40 %, on purpose."""
    for step in range(steps):
        if step == 4:
            raise ValueError("row 4 is malformed (this task fails on purpose)")
        self.progress.update(current=step + 1, total=steps, step=f"step {step + 1}")
        time.sleep(0.2)


@progress_task(app, max_retries=3)
def flaky(self: Any, failures: int = 2) -> str:
    """Fails ``failures`` times, retrying after a second; then succeeds."""
    for step in range(5):
        self.progress.update(current=step + 1, total=5, step="calling the flaky service")
        time.sleep(0.1)
    if self.request.retries < failures:
        raise self.retry(exc=ConnectionError("the service is flaky"), countdown=1)
    return f"succeeded on attempt {self.request.retries + 1}"
