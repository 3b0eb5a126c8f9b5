"""Fixtures of the dashboard tests: a tracker with sessions in every state, apps, clients,
the browser, and a real Celery worker serving ``celery_project``."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.applications import Starlette
from starlette.testclient import TestClient

from celery_progress_mcp import (
    InProgress,
    ProgressConfig,
    ProgressGranularity,
    ProgressTracker,
    SubOperation,
)
from celery_progress_mcp.testing import eventually
from celery_progress_mcp.web import create_app

from ..servers import server_url

#: The token of the apps that require one.
TOKEN = "s3cret-token-for-tests"
#: What the tests send on state-changing requests.
CSRF = {"X-Requested-With": "tests"}
#: Text that would run as script if a page failed to escape it.
HOSTILE_STEP = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class Sessions:
    running: str
    paused: str
    completed: str
    failed: str
    cancelled: str
    initializing: str
    group: str


@pytest.fixture
def tracker() -> Iterator[ProgressTracker]:
    config = ProgressConfig(update_interval_ms=0, granularity_level=ProgressGranularity.VERBOSE)
    with ProgressTracker(config) as tracker:
        yield tracker


@pytest.fixture
def sessions(tracker: ProgressTracker) -> Sessions:
    running = tracker.create_session("file_processing", {"worker": "celery@alpha", "file": "a.csv"})
    tracker.update_progress(
        running,
        InProgress(
            percentage=42.5, current_step=HOSTILE_STEP, current_step_number=3, total_steps=8
        ),
    )
    paused = tracker.create_session("ml_training")
    tracker.update_progress(paused, InProgress(percentage=10))
    tracker.pause_session(paused, "waiting for a GPU")
    completed = tracker.create_session("file_processing")
    tracker.update_progress(completed, InProgress(percentage=50))
    tracker.complete_session(completed, "100 rows")
    failed = tracker.create_session("report")
    tracker.fail_session(failed, "disk full", "ENOSPC")
    cancelled = tracker.create_session("report")
    tracker.cancel_session(cancelled, "not needed")
    initializing = tracker.create_session("queued_job")
    group = tracker.create_session("group")
    tracker.add_sub_operations(
        group,
        [
            SubOperation(id="load", name="Load data"),
            SubOperation(id="train", name="Train <model>", weight=3),
            SubOperation(id="eval", name="Evaluate"),
        ],
    )
    tracker.start_sub_operation(group, "load")
    tracker.complete_sub_operation(group, "load")
    tracker.start_sub_operation(group, "train")
    tracker.update_sub_operation(group, "train", percentage=50)
    return Sessions(running, paused, completed, failed, cancelled, initializing, group)


@pytest.fixture(params=["open", "token"])
def auth_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def app(tracker: ProgressTracker, auth_mode: str) -> Starlette:
    return create_app(tracker, token=TOKEN if auth_mode == "token" else None)


@pytest.fixture
def client(app: Starlette, auth_mode: str) -> Iterator[TestClient]:
    """A client that is authenticated when the app wants it."""
    headers = {"Authorization": f"Bearer {TOKEN}"} if auth_mode == "token" else {}
    with TestClient(app, base_url="http://127.0.0.1", headers=headers) as client:
        yield client


@pytest.fixture
def anonymous(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield client


# -- the browser ----------------------------------------------------------------------------

#: Debian's Chromium; .ci/run installs it.
CHROMIUM = Path("/usr/bin/chromium")
#: Flags for a headless run in a container, with nothing reaching out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Guard against a hang, in ms; no assertion is about speed.
GUARD_MS = 20_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"needs {CHROMIUM} (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI") or os.environ.get("CELERY_PROGRESS_REQUIRE_SERVERS"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(GUARD_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"script errors in the page: {errors}"


# -- a real Celery worker ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
#: Guard against a worker that never starts, in seconds.
WORKER_START_S = 60.0


@dataclass(frozen=True)
class CeleryProject:
    module: ModuleType
    #: What configures it, in this process and the worker's.
    env: dict[str, str]


@pytest.fixture(scope="session")
def celery_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryProject]:
    """The project module, configured for these tests; imported once, so its tasks register once."""
    folder = tmp_path_factory.mktemp("celery-project")
    env = {
        "WEB_TEST_BROKER": server_url("redis"),
        "WEB_TEST_STORE": f"sqlite:///{folder / 'progress.db'}",
        "WEB_TEST_QUEUE": f"webproj-{uuid.uuid4().hex[:8]}",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    sys.modules.pop("tests.web.celery_project", None)
    module = importlib.import_module("tests.web.celery_project")
    try:
        yield CeleryProject(module, env)
    finally:
        module.tracker.close()
        sys.modules.pop("tests.web.celery_project", None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def project(celery_project: CeleryProject) -> Iterator[ModuleType]:
    """The project module, and a prefork worker serving it for one test module's tests."""
    module, env = celery_project.module, celery_project.env
    name = f"{env['WEB_TEST_QUEUE']}@{socket.gethostname()}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.web.celery_project",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            env["WEB_TEST_QUEUE"],
            "-n",
            name,
        ],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
    )
    try:

        def answers_a_ping() -> Any:
            if worker.poll() is not None:
                raise RuntimeError("the Celery worker exited")
            return module.app.control.ping(destination=[name], timeout=1.0)

        eventually(answers_a_ping, timeout_s=WORKER_START_S, what="the Celery worker starting")
        yield module
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
