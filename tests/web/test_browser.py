"""The dashboard in a real browser: Debian's Chromium driven by Playwright, headless.

The browser is the system's (``/usr/bin/chromium``, installed by .ci/run);
Playwright never downloads one. Waits use Playwright's own auto-waiting
(``expect``), bounded only as a guard against a hang.
"""

from __future__ import annotations

import threading

from playwright.sync_api import Dialog, Page, expect

from celery_progress_mcp import InProgress, ProgressTracker, SessionNotFound, SubOperation
from celery_progress_mcp.web import create_app

from .conftest import HOSTILE_STEP, TOKEN
from .server import serving

#: Guard against a hang, in ms; no assertion is about speed.
GUARD_MS = 20_000


class FakeTask:
    """A task's loop in a thread: reports progress until done or cancelled (cooperatively)."""

    def __init__(
        self, tracker: ProgressTracker, session_id: str, *, steps: int, pause_s: float
    ) -> None:
        self.tracker = tracker
        self.session_id = session_id
        self.steps = steps
        self.pause_s = pause_s
        self.cancelled = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for step in range(1, self.steps + 1):
            if self.stop.wait(self.pause_s):
                return
            try:
                if self.tracker.get_session(self.session_id).status == "cancelled":
                    self.cancelled.set()
                    return
            except SessionNotFound:
                return
            self.tracker.update_progress(
                self.session_id,
                InProgress(percentage=100 * step / self.steps, current_step=f"row {step}"),
            )

    def __enter__(self) -> FakeTask:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def test_list_bar_moves_without_a_reload(tracker: ProgressTracker, page: Page) -> None:
    session_id = tracker.create_session("file_processing", {"worker": "celery@alpha"})
    tracker.update_progress(session_id, InProgress(percentage=1))
    with serving(create_app(tracker)) as url:
        page.goto(url + "/")
        page.evaluate("window.__loaded_once = true")
        row = page.locator(f'tr[data-session="{session_id}"]')
        expect(row.locator('[data-field="percentage"]')).to_have_text("1.0%")
        expect(page.locator("#live")).to_have_text("live")
        with FakeTask(tracker, session_id, steps=400, pause_s=0.02):
            expect(row.locator('[data-field="step"]')).to_contain_text("row ")
            bar = row.locator("progress")
            page.wait_for_function("el => el.value >= 20", arg=bar.element_handle())
        # The same document all along: the page was never reloaded.
        assert page.evaluate("window.__loaded_once") is True


def test_session_page_shows_sub_operations(tracker: ProgressTracker, page: Page) -> None:
    session_id = tracker.create_session("ml_training")
    tracker.add_sub_operations(
        session_id,
        [
            SubOperation(id="load", name="Load data"),
            SubOperation(id="train", name="Train", weight=8),
        ],
    )
    tracker.start_sub_operation(session_id, "load")
    with serving(create_app(tracker)) as url:
        page.goto(f"{url}/sessions/{session_id}")
        subs = page.locator("#subs tbody tr")
        expect(subs).to_have_count(2)
        expect(subs.nth(0)).to_contain_text("Load data")
        expect(subs.nth(0)).to_contain_text("active")
        expect(subs.nth(1)).to_contain_text("pending")
        # Live: the sub-operations change while the page is open.
        tracker.complete_sub_operation(session_id, "load")
        tracker.add_sub_operations(session_id, [SubOperation(id="eval", name="Evaluate")])
        expect(subs).to_have_count(3)
        expect(subs.nth(0)).to_contain_text("completed")
        expect(page.locator("#sub-count")).to_have_text("3")
        expect(page.locator("#chart")).to_be_visible()


def test_cancel_button_cancels_a_running_task(tracker: ProgressTracker, page: Page) -> None:
    session_id = tracker.create_session("long_job")
    with (
        serving(create_app(tracker, token=TOKEN)) as url,
        FakeTask(tracker, session_id, steps=100_000, pause_s=0.05) as task,
    ):
        # Logged in through the form, as a browser does (a token in the URL opens nothing).
        page.goto(f"{url}/sessions/{session_id}")
        page.fill('input[name="token"]', TOKEN)
        page.click('form.login button[type="submit"]')
        expect(page.locator("#status")).to_have_text("in progress")
        prompts: list[str] = []

        def accept(dialog: Dialog) -> None:
            prompts.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        page.click('button[data-action="cancel"]')
        expect(page.locator("#status")).to_have_text("cancelled")
        assert task.cancelled.wait(GUARD_MS / 1000)
    assert prompts
    assert "Cancel this session?" in prompts[0]
    assert tracker.get_session(session_id).status == "cancelled"
    expect(page.locator('button[data-action="cancel"]')).to_be_hidden()


def test_dismissed_confirmation_changes_nothing(tracker: ProgressTracker, page: Page) -> None:
    session_id = tracker.create_session("kept")
    tracker.update_progress(session_id, InProgress(percentage=5))
    with serving(create_app(tracker)) as url:
        page.goto(f"{url}/sessions/{session_id}")
        page.on("dialog", lambda dialog: dialog.dismiss())
        page.click('button[data-action="pause"]')
        expect(page.locator("#status")).to_have_text("in progress")
    assert tracker.get_session(session_id).status == "in_progress"


def test_script_in_a_step_is_shown_as_text(tracker: ProgressTracker, page: Page) -> None:
    session_id = tracker.create_session("hostile", {"note": HOSTILE_STEP})
    tracker.update_progress(session_id, InProgress(percentage=10, current_step=HOSTILE_STEP))
    later = tracker.create_session("hostile later")
    tracker.update_progress(later, InProgress(percentage=1))
    with serving(create_app(tracker)) as url:
        page.goto(url + "/")
        row = page.locator(f'tr[data-session="{session_id}"]')
        expect(row.locator('[data-field="step"]')).to_have_text(HOSTILE_STEP)
        # The same text arriving live goes through the script's own rendering.
        tracker.update_progress(later, InProgress(percentage=2, current_step=HOSTILE_STEP))
        later_row = page.locator(f'tr[data-session="{later}"]')
        expect(later_row.locator('[data-field="step"]')).to_have_text(HOSTILE_STEP)
        page.goto(f"{url}/sessions/{session_id}")
        expect(page.locator("#step")).to_have_text(HOSTILE_STEP)
        expect(page.locator("#metadata")).to_contain_text(HOSTILE_STEP)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main script, main img:not(#chart)").count() == 0
