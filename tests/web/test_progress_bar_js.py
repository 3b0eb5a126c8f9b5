"""``celery_progress_mcp.js`` in Chromium, against the dashboard and a real worker.

The page is served by the dashboard's own server (a few test routes in
front of it) under a strict Content-Security-Policy. celery-progress's
``celery_progress.js`` (a test dependency, unchanged) runs on the same page
for the same tasks, so each bar of the new script is compared with what
celery-progress's own bar did: the callbacks that fired, in order, with
the same ``this``, the result, and the DOM left behind. The server records
every request: the new script must follow each task over its stream and
never poll it, and must poll when the stream cannot be had.
"""

from __future__ import annotations

import html
import importlib.resources
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from celery import group
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from celery_progress_mcp.web import create_app
from celery_progress_mcp.web.scripts import SCRIPT_PATH

from .server import serving

#: Guard against a worker or a task that never answers, in ms.
GUARD_MS = 60_000
#: celery-progress's default colours, as computed style.
SUCCESS_COLOUR = "rgb(118, 206, 96)"
ERROR_COLOUR = "rgb(220, 79, 99)"
#: Pages may run scripts of their own origin only, and reach nothing else.
CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'"

#: The test's own script: ``watch(which, name, url, extra)`` starts a bar and records it.
HARNESS = Path(__file__).with_name("progress_bar_harness.js").read_bytes()

#: The page of a comparison: both scripts (celery-progress's first, as a page would have it).
BOTH_PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>both bars</title>
<script src="/theirs.js"></script>
<script src="{SCRIPT_PATH}"></script>
<script src="/harness.js"></script>
</head><body><div id="bars"></div></body></html>
"""

#: A page with the new script alone, and a bar in markup as the Django app's
#: ``{% progress_bar %}`` renders it (here without its style sheet).
MARKUP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>markup</title>
<script src="{script}" defer></script>
<script src="/harness.js" defer></script>
</head><body><div id="bars"></div>
<div id="auto" data-celery-progress-url="{url}" data-celery-progress-poll-interval="200">
  <div class="cpm-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100"
    aria-valuenow="0"><div class="cpm-bar-fill"></div></div>
  <div class="cpm-message">Waiting for the task to start…</div>
  <ul class="cpm-sub-operations"></ul>
  <div class="cpm-result"></div>
</div>
</body></html>
"""


def _celery_progress_js() -> bytes:
    static = importlib.resources.files("celery_progress") / "static" / "celery_progress"
    return (static / "celery_progress.js").read_bytes()


@dataclass
class Site:
    url: str
    #: Every HTTP request's path and query, in order of arrival.
    requests: list[str] = field(default_factory=list)

    def asked(self, path: str) -> int:
        return sum(request == path for request in self.requests)


def _pages() -> Starlette:
    headers = {"content-security-policy": CSP}

    async def both(request: Request) -> Response:
        return HTMLResponse(BOTH_PAGE, headers=headers)

    async def markup(request: Request) -> Response:
        page = MARKUP_PAGE.format(script=SCRIPT_PATH, url=html.escape(request.query_params["url"]))
        return HTMLResponse(page, headers=headers)

    async def theirs(request: Request) -> Response:
        return Response(_celery_progress_js(), media_type="text/javascript")

    async def harness(request: Request) -> Response:
        return Response(HARNESS, media_type="text/javascript")

    return Starlette(
        routes=[
            Route("/both", both),
            Route("/markup", markup),
            Route("/theirs.js", theirs),
            Route("/harness.js", harness),
        ]
    )


@contextmanager
def site(project: ModuleType) -> Iterator[Site]:
    """The dashboard over the project's tracker, the test pages in front, every request noted."""
    dashboard = create_app(project.tracker)
    pages = _pages()
    own_paths = {"/both", "/markup", "/theirs.js", "/harness.js"}
    requests: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handler: ASGIApp = dashboard  # the dashboard's lifespan too: its bus must consume
        if scope["type"] == "http":
            query = scope["query_string"].decode()
            requests.append(scope["path"] + (f"?{query}" if query else ""))
            if scope["path"] in own_paths:
                handler = pages
        await handler(scope, receive, send)

    with serving(app) as url:
        yield Site(url, requests)


def _watch(
    page: Page, which: str, name: str, url: str, extra: dict[str, Any] | None = None
) -> None:
    page.evaluate(
        "([which, name, url, extra]) => window.watch(which, name, url, extra)",
        [which, name, url, extra or {}],
    )


def _settled(page: Page, name: str) -> dict[str, Any]:
    page.wait_for_function(
        "name => window.outcome[name].resulted || window.outcome[name].errors.length",
        arg=name,
        timeout=GUARD_MS,
    )
    seen: dict[str, Any] = page.evaluate("name => window.outcome[name]", name)
    return seen


def _drawn(page: Page, name: str) -> dict[str, Any]:
    """What a bar left in its elements."""
    drawn: dict[str, Any] = page.evaluate(
        """name => {
          const bar = document.getElementById(name + "-bar");
          return {
            colour: getComputedStyle(bar).backgroundColor,
            width: bar.style.width,
            message: document.getElementById(name + "-message").textContent,
            result: document.getElementById(name + "-result").textContent,
          };
        }""",
        name,
    )
    return drawn


def _sub_operations(page: Page, selector: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        f"{selector} li.cpm-sub-operation",
        """items => items.map((item) => ({
          name: item.querySelector(".cpm-sub-name").textContent,
          status: item.dataset.status,
          percent: item.querySelector(".cpm-sub-percent").textContent,
          width: item.querySelector(".cpm-sub-bar-fill").style.width,
        }))""",
    )
    return rows


def test_each_bar_follows_its_stream_and_ends_as_celery_progress_does(
    project: ModuleType, page: Page
) -> None:
    with site(project) as here:
        page.goto(here.url + "/both")
        staged = project.staged.delay(4, 0.15)
        plain = project.plain_tally.delay(6, 0.1)
        broken = project.broken.delay(3, 0.05)
        tracked_group = group(project.tally.s(3, 0.05), project.tally.s(4, 0.05)).apply_async()
        paths = {
            "staged": f"/celery-progress/{staged.id}/",
            "plain": f"/celery-progress/{plain.id}/",
            "broken": f"/celery-progress/{broken.id}/",
            "group": f"/celery-progress/g/{tracked_group.id}/",
        }
        for name, path in paths.items():
            _watch(page, "theirs", f"{name}-theirs", f"{path}?bar=theirs")
            _watch(page, "mine", f"{name}-mine", f"{path}?bar=mine")
        outcomes = {}
        for name in paths:
            for which in ("theirs", "mine"):
                outcomes[f"{name}-{which}"] = _settled(page, f"{name}-{which}")
        drawn = {key: _drawn(page, key) for key in outcomes}
        staged_subs = _sub_operations(page, "#staged-mine-subs")
        group_subs = _sub_operations(page, "#group-mine-subs")
        violations = page.evaluate("window.violations")
    assert violations == []
    for name, path in paths.items():
        theirs, mine = outcomes[f"{name}-theirs"], outcomes[f"{name}-mine"]
        assert mine["errors"] == theirs["errors"] == [], name
        assert mine["self"] is theirs["self"] is True, name  # `this` is the bar in every callback
        assert mine["calls"] == theirs["calls"], name
        assert mine["result"] == theirs["result"], name
        assert drawn[f"{name}-mine"] == drawn[f"{name}-theirs"], name
        # The new script took the stream and never polled; celery-progress's polled.
        assert here.asked(f"{path}stream/?bar=mine") == 1, name
        assert here.asked(f"{path}?bar=mine") == 0, name
        assert here.asked(f"{path}?bar=theirs") >= 1, name
    for name in ("staged", "plain", "group"):
        assert outcomes[f"{name}-mine"]["calls"] == ["progress", "success", "result"], name
        assert drawn[f"{name}-mine"]["colour"] == SUCCESS_COLOUR
        assert drawn[f"{name}-mine"]["width"] == "100%"
    assert outcomes["staged-mine"]["result"] == {"stages": 2, "rows": 4}
    assert outcomes["group-mine"]["result"] == [{"processed": 3}, {"processed": 4}]
    assert outcomes["broken-mine"]["calls"] == ["progress", "taskError", "result"]
    assert outcomes["broken-mine"]["result"] == "row 3 is broken"
    assert drawn["broken-mine"]["colour"] == ERROR_COLOUR
    # The tracked task was seen on its way, its stages drawn while it ran and at the end.
    running = [p for p in outcomes["staged-mine"]["progress"] if 0 < p["percent"] < 100]
    assert running, outcomes["staged-mine"]["progress"]
    assert outcomes["staged-mine"]["subs"] == 2
    assert staged_subs == [
        {"name": "Load the rows", "status": "completed", "percent": "100%", "width": "100%"},
        {"name": "Sum the rows", "status": "completed", "percent": "100%", "width": "100%"},
    ]
    assert [row["status"] for row in group_subs] == ["completed", "completed"]
    # celery-progress's bar has no sub-operations: its element stays empty.
    assert outcomes["staged-theirs"]["subs"] == 0


def test_polling_takes_over_without_a_stream_and_markup_starts_itself(
    project: ModuleType, page: Page
) -> None:
    with site(project) as here:
        fallen = project.tally.delay(3, 0.1)
        polled = project.tally.delay(2, 0.1)
        marked = project.staged.delay(2, 0.1)
        marked_path = f"/celery-progress/{marked.id}/"
        page.goto(f"{here.url}/markup?url={marked_path}")
        fallen_path = f"/celery-progress/{fallen.id}/"
        # The stream named is a 404: polling takes over, through initProgressBar.
        nowhere = {"streamUrl": "/no-such-stream/", "viaInit": True}
        _watch(page, "mine", "fallen", f"{fallen_path}?bar=fallen", nowhere)
        polled_path = f"/celery-progress/{polled.id}/"
        _watch(page, "mine", "polled", f"{polled_path}?bar=polled", {"stream": False})
        outcomes = {name: _settled(page, name) for name in ("fallen", "polled")}
        page.wait_for_function(
            "() => document.querySelector('#auto .cpm-message').textContent.startsWith('Success')",
            timeout=GUARD_MS,
        )
        auto = page.evaluate(
            """() => {
              const fill = document.querySelector("#auto .cpm-bar-fill");
              const track = document.querySelector("#auto .cpm-bar");
              return {
                colour: getComputedStyle(fill).backgroundColor,
                width: fill.style.width,
                height: track.getBoundingClientRect().height,
                value: track.getAttribute("aria-valuenow"),
                rows: document.querySelectorAll("#auto ul.cpm-sub-operations > li").length,
              };
            }"""
        )
        auto_subs = _sub_operations(page, "#auto .cpm-sub-operations")
        violations = page.evaluate("window.violations")
    assert violations == []
    for name in ("fallen", "polled"):
        assert outcomes[name]["errors"] == [], name
        assert outcomes[name]["self"] is True, name
        assert outcomes[name]["calls"] == ["progress", "success", "result"], name
    assert outcomes["fallen"]["result"] == {"processed": 3}
    # The stream was asked for first, refused, and polling followed, never both at once.
    stream_at = here.requests.index("/no-such-stream/")
    first_poll = here.requests.index(f"{fallen_path}?bar=fallen")
    assert stream_at < first_poll
    assert here.asked(f"{fallen_path}stream/?bar=fallen") == 0
    assert here.asked(f"{polled_path}?bar=polled") >= 1
    assert not any(request.startswith(f"{polled_path}stream/") for request in here.requests)
    # The bar in markup: followed over its stream, drawn in its own elements.
    assert here.asked(f"{marked_path}stream/") == 1
    assert here.asked(marked_path) == 0
    assert auto["colour"] == SUCCESS_COLOUR
    assert auto["width"] == "100%"
    assert auto["height"] > 0  # the unstyled track was given a look of its own
    assert auto["value"] == "100"
    assert auto["rows"] == 2  # rows right in the template's list, not a list in a list
    assert [(row["name"], row["status"]) for row in auto_subs] == [
        ("Load the rows", "completed"),
        ("Sum the rows", "completed"),
    ]
