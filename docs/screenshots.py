"""Take the README's dashboard screenshots with Playwright and Debian's Chromium.

    python docs/screenshots.py      # writes docs/dashboard-list.png, docs/dashboard-session.png

The sessions are made up but shaped like a real Celery deployment's: a
history of ten minutes is recorded through a fake clock, so the chart has a
shape without waiting ten minutes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from celery_progress_mcp import (  # noqa: E402
    InProgress,
    ProgressConfig,
    ProgressGranularity,
    ProgressTracker,
    SubOperation,
)
from celery_progress_mcp.testing import FakeClock  # noqa: E402
from celery_progress_mcp.web import create_app  # noqa: E402
from tests.web.server import serving  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WORKERS = ["celery@worker-1", "celery@worker-2", "celery@gpu-1"]


def populate(tracker: ProgressTracker, clock: FakeClock) -> str:
    """Sessions in every state; returns the pipeline session's id."""
    pipeline = tracker.create_session(
        "ml_pipeline", {"worker": WORKERS[2], "dataset": "events-2025-06.csv"}
    )
    tracker.add_sub_operations(
        pipeline,
        [
            SubOperation(id="load", name="Load CSV", weight=1),
            SubOperation(id="clean", name="Clean rows", weight=2),
            SubOperation(id="train", name="Train model", weight=6),
            SubOperation(id="eval", name="Evaluate", weight=1),
        ],
    )
    files = [
        tracker.create_session(
            "process_csv", {"worker": WORKERS[i % 2], "file": f"orders-{i:02d}.csv"}
        )
        for i in range(6)
    ]
    failed = tracker.create_session("send_report", {"worker": WORKERS[1]})
    cancelled = tracker.create_session("reindex_search", {"worker": WORKERS[0]})
    paused = tracker.create_session("backfill_invoices", {"worker": WORKERS[0]})
    stages = [("load", 8), ("clean", 14), ("train", 40), ("eval", 10)]
    minute = 0
    for stage, steps in stages[:3]:
        tracker.start_sub_operation(pipeline, stage)
        for step in range(1, steps + 1):
            clock.advance(6)
            pct = 100 * step / steps
            if stage == "train" and pct > 62:
                break
            tracker.update_sub_operation(pipeline, stage, percentage=pct)
            tracker.update_progress(
                pipeline,
                InProgress(
                    current_step=f"{stage}: batch {step}/{steps}",
                    current_step_number=[s for s, _ in stages].index(stage) + 1,
                    total_steps=4,
                ),
            )
            for index, session_id in enumerate(files):
                done = min(97.0, (minute + 1) * (0.9 + 0.3 * index))
                tracker.update_progress(
                    session_id,
                    InProgress(
                        percentage=done,
                        current_step="importing rows",
                        current_step_number=int(done * 1200),
                        total_steps=120000,
                    ),
                )
            minute += 1
            if minute == 10:
                tracker.fail_session(failed, "SMTP server refused the connection", "SMTPError")
                tracker.update_progress(paused, InProgress(percentage=35))
            if minute == 20:
                tracker.pause_session(paused, "waiting for the billing API quota")
            if minute == 30:
                tracker.update_progress(cancelled, InProgress(percentage=20))
                tracker.cancel_session(cancelled, "superseded by a newer reindex")
        if stage != "train":
            tracker.complete_sub_operation(pipeline, stage)
    tracker.complete_session(files[0], "120000 rows imported")
    tracker.complete_session(files[1], "120000 rows imported")
    return pipeline


def main() -> None:
    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=7))
    config = ProgressConfig(update_interval_ms=0, granularity_level=ProgressGranularity.VERBOSE)
    tracker = ProgressTracker(config, clock=clock)
    pipeline = populate(tracker, clock)
    out = ROOT / "docs"
    with (
        serving(create_app(tracker, title="Celery progress")) as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1360, "height": 820}, device_scale_factor=1)
        page.goto(url + "/")
        page.wait_for_selector("#live.on")
        page.screenshot(path=str(out / "dashboard-list.png"), full_page=True)
        page.set_viewport_size({"width": 1360, "height": 1000})
        page.goto(f"{url}/sessions/{pipeline}")
        page.wait_for_selector("#live.on")
        page.wait_for_function("document.getElementById('chart').complete")
        page.screenshot(path=str(out / "dashboard-session.png"), full_page=True)
        browser.close()
    tracker.close()
    print(f"wrote {out / 'dashboard-list.png'} and {out / 'dashboard-session.png'}")


if __name__ == "__main__":
    main()
