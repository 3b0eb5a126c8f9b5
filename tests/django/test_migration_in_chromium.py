"""The migration, proven in Chromium, on the example's Django site and a real worker.

The site is ``example_project/mysite`` as its README runs it: ``manage.py
migrate`` on an empty database (Django's tables and the progress store's),
``createsuperuser``, then served by ``runserver`` (WSGI) and by uvicorn on
its ``asgi.py`` (ASGI), with one page added (:mod:`.example_site`). A
prefork worker of the example project (``celery -A proj worker``; Redis as
broker and result backend, a queue of this run's own) runs the pipeline.

In Chromium: the site's button starts the pipeline and its page follows it
with this project's script; on the migration page of each server,
celery-progress's own ``celery_progress.js`` (from the installed
celery-progress package, unchanged) and this project's script each drive a
bar for the same task, called as celery-progress's README calls it
(``CeleryProgressBar.initProgressBar(url)``) on the include's
``task_status`` URL. Then the admin's login opens the dashboard, which
lists the pipeline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from celery_progress_mcp.testing import eventually

from ..servers import server_url
from ..web.conftest import CHROMIUM, CHROMIUM_ARGS
from ..web.server import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = ROOT / "example_project"
#: The example site with the migration page.
SETTINGS_MODULE = "tests.django.example_site.settings"
#: Guard against a command, a worker or a server that never answers, in seconds.
START_GUARD_S = 60.0
#: Guard against a pipeline that never ends, in ms; no assertion is about speed.
GUARD_MS = 90_000
#: The default colour of a bar that reached success (both scripts'), as computed style.
SUCCESS_COLOUR = "rgb(118, 206, 96)"
#: The pipeline's stages, as ``proj.tasks.pipeline`` plans them.
STAGES = [
    "Generate the CSV",
    "Validate the rows",
    "Split into chunks",
    "Process the chunks (a chord)",
    "Write the report",
]
#: The login ``createsuperuser`` makes here, as the README's.
ADMIN = {"username": "admin", "password": "admin"}


@dataclass
class Site:
    """The example site's servers, its worker and the browser's pages of this run."""

    servers: dict[str, str]
    browser: BrowserContext
    errors: list[str] = field(default_factory=list)

    def page(self) -> Page:
        page = self.browser.new_page()
        page.set_default_timeout(GUARD_MS)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page


def _environment(data: Path, queue: str) -> dict[str, str]:
    """The example on Redis, its data, store and queue this run's own; no Django settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CELERY_PROGRESS_", "EXAMPLE_", "DJANGO_"))
    }
    redis = server_url("redis")
    env.update(
        EXAMPLE_DATA_DIR=str(data),
        EXAMPLE_BROKER_URL=redis,
        EXAMPLE_RESULT_BACKEND=redis,
        EXAMPLE_QUEUE=queue,
        # The site's database file: migrate creates the store there, proj's workers write it.
        CELERY_PROGRESS_STORE_URL=f"sqlite:///{data / 'example.sqlite3'}",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(EXAMPLE_DIR)]),
    )
    return env


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Every process asked to stop at once, then waited for (killed if it hangs)."""
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The README's commands, the worker and both servers; the browser."""
    if not CHROMIUM.exists():
        message = f"needs {CHROMIUM} (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI") or os.environ.get("CELERY_PROGRESS_REQUIRE_SERVERS"):
            pytest.fail(message)
        pytest.skip(message)
    queue = f"example-site-{uuid.uuid4().hex[:8]}"
    data = tmp_path_factory.mktemp("example-site")
    env = _environment(data, queue)
    site_env = {**env, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE}
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate"],
        cwd=EXAMPLE_DIR,
        env=site_env,
        capture_output=True,
        text=True,
        timeout=START_GUARD_S,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "Progress store at revision" in migrated.stdout, migrated.stdout
    name = f"{queue}@{socket.gethostname()}"
    ports = {"wsgi": free_port(), "asgi": free_port()}
    servers = {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}
    # Each then at once: the login, the worker, the site over WSGI and over ASGI.
    commands = {
        "admin": (
            [
                *("manage.py", "createsuperuser", "--noinput", "--username", ADMIN["username"]),
                *("--email", "admin@example.com"),
            ],
            {**site_env, "DJANGO_SUPERUSER_PASSWORD": ADMIN["password"]},
        ),
        "worker": (
            [
                *("-m", "celery", "-A", "proj", "worker", "--pool=prefork", "--concurrency=3"),
                *("--loglevel=WARNING", "--without-gossip", "--without-mingle"),
                *("-Q", queue, "-n", name),
            ],
            env,
        ),
        "wsgi": (["manage.py", "runserver", f"127.0.0.1:{ports['wsgi']}", "--noreload"], site_env),
        "asgi": (
            ["-m", "uvicorn", "mysite.asgi:application", "--port", str(ports["asgi"])],
            site_env,
        ),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    ping = Celery("ping", broker=env["EXAMPLE_BROKER_URL"], set_as_current=False)
    try:
        for kind, (arguments, process_env) in commands.items():
            processes[kind] = subprocess.Popen(
                [sys.executable, *arguments], cwd=EXAMPLE_DIR, env=process_env
            )
        for kind, url in servers.items():

            def answers(kind: str = kind, url: str = url) -> httpx.Response:
                if processes[kind].poll() is not None:
                    raise RuntimeError(f"the {kind} server exited")
                try:
                    return httpx.get(url + "/")
                except httpx.TransportError as exc:
                    raise LookupError("not listening yet") from exc

            page = eventually(answers, timeout_s=START_GUARD_S, what=f"the {kind} server")
            assert page.status_code == 200, page.text

        def answers_a_ping() -> Any:
            if processes["worker"].poll() is not None:
                raise RuntimeError("the Celery worker exited")
            return ping.control.ping(destination=[name], timeout=1.0)

        eventually(answers_a_ping, timeout_s=START_GUARD_S, what="the Celery worker starting")
        assert processes["admin"].wait(START_GUARD_S) == 0, "createsuperuser failed"
        with sync_playwright() as playwright:
            browser: Browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            yield Site(servers=servers, browser=context)
            context.close()
            browser.close()
    finally:
        ping.close()
        _stop(processes)


@dataclass(frozen=True)
class Pipeline:
    """One pipeline started by the site's button, its pages opened while it runs."""

    task_id: str
    #: The site's own page of the pipeline, where the button led.
    page: Page
    #: The migration page on each server (``wsgi``, ``asgi``).
    migration: dict[str, Page]


@pytest.fixture(scope="module")
def pipeline(site: Site) -> Pipeline:
    """The button pressed on the WSGI server; every page opened before any is waited on."""
    page = site.page()
    page.goto(site.servers["wsgi"] + "/")
    page.click("#start")
    page.wait_for_url("**/pipelines/*/")
    task_id = page.url.rstrip("/").rpartition("/")[2]
    migration = {}
    for kind, url in site.servers.items():
        migration[kind] = site.page()
        migration[kind].goto(f"{url}/migration/{task_id}/")
    return Pipeline(task_id, page, migration)


def _frame_outcome(page: Page, script: str) -> dict[str, Any]:
    frame = page.frame(name=script)
    assert frame is not None, script
    frame.wait_for_function(
        "() => window.outcome.resulted || window.outcome.errors.length", timeout=GUARD_MS
    )
    outcome: dict[str, Any] = frame.evaluate("() => window.outcome")
    outcome["colour"] = frame.eval_on_selector(
        "#progress-bar", "bar => getComputedStyle(bar).backgroundColor"
    )
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize("server", ["wsgi", "asgi"])
def test_celery_progress_js_and_ours_both_reach_success(
    site: Site, pipeline: Pipeline, server: str
) -> None:
    theirs = _frame_outcome(pipeline.migration[server], "celery_progress")
    ours = _frame_outcome(pipeline.migration[server], "celery_progress_mcp")
    for outcome in (theirs, ours):
        assert outcome["errors"] == []
        assert outcome["success"] is True
        assert outcome["colour"] == SUCCESS_COLOUR
    assert theirs["result"]["rows"] == 20_000  # the pipeline's own result, as JSON
    assert ours["result"] == theirs["result"]
    assert site.errors == []


@pytest.mark.slow
def test_the_site_page_follows_the_pipeline_to_success(site: Site, pipeline: Pipeline) -> None:
    page = pipeline.page
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('.cpm-bar-fill')).backgroundColor"
        f" === {SUCCESS_COLOUR!r}",
        timeout=GUARD_MS,
    )
    assert (page.text_content(".cpm-message") or "").strip() == "Success!"
    assert site.errors == []


@pytest.mark.slow
def test_ours_shows_the_pipeline_stages(site: Site, pipeline: Pipeline) -> None:
    _frame_outcome(pipeline.migration["wsgi"], "celery_progress")  # the pipeline has ended
    frame = pipeline.migration["wsgi"].frame(name="celery_progress_mcp")
    assert frame is not None
    drawn = {
        "the site's page": pipeline.page.locator(".cpm-sub-operations .cpm-sub-name"),
        "the migration page": frame.locator("#progress-bar-sub-operations .cpm-sub-name"),
    }
    for where, names in drawn.items():
        assert names.all_text_contents() == STAGES, where


@pytest.mark.slow
def test_the_admin_login_opens_the_dashboard_which_lists_the_pipeline(
    site: Site, pipeline: Pipeline
) -> None:
    page = site.page()
    page.goto(site.servers["wsgi"] + "/celery-progress/dashboard/")
    assert page.url.startswith(site.servers["wsgi"] + "/admin/login/")
    page.fill("#id_username", ADMIN["username"])
    page.fill("#id_password", ADMIN["password"])
    page.click("input[type=submit]")
    page.wait_for_url("**/celery-progress/dashboard/")
    row = page.locator(f'tr[data-session="{pipeline.task_id}"]')
    assert row.locator('[data-field="operation"]').text_content() == "proj.tasks.pipeline"
    assert site.errors == []
