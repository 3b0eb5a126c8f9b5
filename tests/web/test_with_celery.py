"""The dashboard over a real Celery worker (prefork, its own process, Redis).

The dashboard runs in this process over the Celery integration's tracker;
cancelling revokes the task and the running task stops at its next update.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from playwright.sync_api import Dialog, Page, expect

from celery_progress_mcp.testing import eventually
from celery_progress_mcp.web import create_app

from .server import serving

pytest.importorskip(
    "celery_progress_mcp.celery", reason="the Celery integration (issue 4) is not in this tree"
)

#: Guard against a worker or a task that never answers, in seconds.
GUARD_S = 60.0
#: The updates this dashboard process saw (its own count).
UPDATES = "celery_progress_process_updates_total"


def test_cancel_button_cancels_a_running_celery_task(project: ModuleType, page: Page) -> None:
    result = project.crunch.delay(100_000)  # some 80 minutes unless cancelled
    with serving(create_app(project.tracker)) as url:
        page.goto(f"{url}/sessions/{result.id}")
        expect(page.locator("#status")).to_have_text("in progress", timeout=GUARD_S * 1000)
        expect(page.locator("#step")).to_contain_text("row ")

        def accept(dialog: Dialog) -> None:
            dialog.accept()

        page.on("dialog", accept)
        page.click('button[data-action="cancel"]')
        expect(page.locator("#status")).to_have_text("cancelled")
        # The task itself stopped: its result is final long before its 80 minutes.
        result.get(timeout=GUARD_S, propagate=False)
    assert result.state == "REVOKED"
    session = project.tracker.get_session(result.id)
    assert session.status == "cancelled"


def test_list_shows_a_celery_task_progress_live(project: ModuleType, page: Page) -> None:
    with serving(create_app(project.tracker)) as url:
        page.goto(url + "/")
        page.evaluate("window.__loaded_once = true")
        result = project.crunch.delay(400, 0.05)  # 20 s of work
        row = page.locator(f'tr[data-session="{result.id}"]')
        try:
            expect(row).to_be_visible(timeout=GUARD_S * 1000)  # a new session joins the list
        except AssertionError as exc:
            # Tell apart a session never made from one the page was not told of.
            stored = project.tracker.store.get(result.id, with_history=False)
            last_seq = project.tracker.store.last_seq()
            raise AssertionError(
                f"no row for {result.id}; in the store: {stored!r}; log ends at {last_seq}"
            ) from exc
        expect(row.locator('[data-field="step"]')).to_contain_text("row ", timeout=GUARD_S * 1000)
        page.wait_for_function("el => el.value >= 10", arg=row.locator("progress").element_handle())
        assert page.evaluate("window.__loaded_once") is True
        project.tracker.cancel_session(result.id, "test over")
        result.get(timeout=GUARD_S, propagate=False)


def test_metrics_count_the_workers_events(project: ModuleType) -> None:
    """Events committed in the worker's process reach this one's /metrics over the bus."""
    from starlette.testclient import TestClient

    with TestClient(create_app(project.tracker), base_url="http://127.0.0.1") as client:
        before = _sample(client.get("/metrics").text, UPDATES)
        result = project.crunch.delay(30, 0.01)
        result.get(timeout=GUARD_S)
        eventually(
            lambda: _sample(client.get("/metrics").text, UPDATES) > before,
            timeout_s=GUARD_S,
            interval_s=0.1,
            what="an update event reaching /metrics",
        )
        text = client.get("/metrics").text
    assert 'celery_progress_process_events_total{event_type="SessionCompleted"}' in text
    assert 'celery_progress_sessions{state="completed"}' in text


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
