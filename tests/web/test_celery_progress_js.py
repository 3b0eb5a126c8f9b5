"""celery-progress's own front-end against the dashboard, from a page on another origin.

``celery_progress.js`` comes from the installed celery-progress package (a
test dependency), unchanged. The page that runs it is served by a second
HTTP server on another port, so every request it makes is cross-origin;
the dashboard runs in this process over the Celery integration's tracker,
and a real prefork worker (Redis) runs the tasks: a tracked one, an
untracked one reporting with ``update_state``, a group of tracked tasks and
a saved group of untracked ones.
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest
from celery import group
from playwright.sync_api import Page

from celery_progress_mcp import SessionNotFound
from celery_progress_mcp.web import create_app

from .server import free_port, serving

#: Guard against a worker or a task that never answers, in ms.
GUARD_MS = 60_000
#: celery_progress.js's default colour of a bar that reached success, as computed style.
SUCCESS_COLOUR = "rgb(118, 206, 96)"

#: The other origin's page: ``watch(name, url)`` starts a bar and records what it is told.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>celery-progress elsewhere</title></head>
<body><div id="bars"></div>
<script src="/celery_progress.js"></script>
<script>
window.outcome = {};
window.watch = function (name, url) {
  const seen = window.outcome[name] = {progress: [], errors: []};
  const element = (suffix) => {
    const made = document.createElement("div");
    made.id = name + "-" + suffix;
    document.getElementById("bars").append(made);
    return made;
  };
  const failed = (kind) => function (bar, message, text) { seen.errors.push(kind + ": " + text); };
  const bar = new CeleryProgressBar(url, {
    progressBarElement: element("bar"),
    progressBarMessageElement: element("message"),
    resultElement: element("result"),
    pollInterval: 200,
    onProgress: function (bar, message, progress) {
      seen.progress.push(progress);
      this.onProgressDefault(bar, message, progress);
    },
    onSuccess: function (bar, message, result) {
      seen.success = true;
      this.onSuccessDefault(bar, message, result);
    },
    onResult: function (element, result) { seen.result = result; seen.resulted = true; },
    onTaskError: failed("task"),
    onNetworkError: failed("network"),
    onHttpError: failed("http"),
    onDataError: failed("data"),
  });
  bar.connect().catch((error) => seen.errors.push("thrown: " + error));
};
</script>
</body></html>
"""


def _celery_progress_js() -> bytes:
    static = importlib.resources.files("celery_progress") / "static" / "celery_progress"
    return (static / "celery_progress.js").read_bytes()


@contextmanager
def elsewhere() -> Iterator[str]:
    """The page and celery_progress.js, served on another port: another origin."""
    files = {
        "/": ("text/html; charset=utf-8", PAGE.encode()),
        "/celery_progress.js": ("text/javascript", _celery_progress_js()),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in files:
                self.send_error(404)
                return
            content_type, body = files[self.path]
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, name="test-elsewhere", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _watch(page: Page, name: str, url: str) -> None:
    page.evaluate("([name, url]) => window.watch(name, url)", [name, url])


def _outcome(page: Page, name: str) -> dict[str, Any]:
    seen: dict[str, Any] = page.evaluate("name => window.outcome[name]", name)
    return seen


# GroupResult.save() on Redis: Celery calls a redis-py method that redis-py deprecates.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_each_bar_reaches_success_with_its_result(project: ModuleType, page: Page) -> None:
    with elsewhere() as origin, serving(create_app(project.tracker, cors_origins=[origin])) as url:
        page.goto(origin + "/")
        tracked = project.tally.delay(20)
        plain = project.plain_tally.delay(20)
        tracked_group = group(project.tally.s(3), project.tally.s(5)).apply_async()
        plain_group = group(project.plain_tally.s(2), project.plain_tally.s(4)).apply_async()
        plain_group.save()  # celery-progress's GroupResult.restore needs it
        bars = {
            "tracked": (f"/celery-progress/{tracked.id}/", {"processed": 20}),
            "plain": (f"/celery-progress/{plain.id}/", {"processed": 20}),
            "tracked_group": (
                f"/celery-progress/g/{tracked_group.id}/",
                [{"processed": 3}, {"processed": 5}],
            ),
            "plain_group": (
                f"/celery-progress/g/{plain_group.id}/",
                [{"processed": 2}, {"processed": 4}],
            ),
        }
        for name, (path, _) in bars.items():
            _watch(page, name, url + path)
        for name, (_, result) in bars.items():
            page.wait_for_function(
                "name => window.outcome[name].resulted || window.outcome[name].errors.length",
                arg=name,
                timeout=GUARD_MS,
            )
            seen = _outcome(page, name)
            assert seen["errors"] == [], name
            assert seen["success"] is True, name
            assert seen["result"] == result, name  # the JSON value, not a repr
            background = page.eval_on_selector(
                f"#{name}-bar", "bar => getComputedStyle(bar).backgroundColor"
            )
            assert background == SUCCESS_COLOUR, name
    # Each kind of id took its own way: the sessions of the tracked, the backend of the rest.
    assert project.tracker.get_session(tracked.id).status == "completed"
    assert project.tracker.get_session(tracked_group.id).status == "completed"
    for untracked in (plain.id, plain_group.id):
        with pytest.raises(SessionNotFound):
            project.tracker.get_session(untracked)
    # Both single tasks were seen on their way: the session's step, update_state's meta.
    for name in ("tracked", "plain"):
        running = [p for p in _outcome(page, name)["progress"] if p.get("description")]
        assert running, f"{name}: no PROGRESS answer seen"
        assert running[0]["description"].startswith("row "), running[0]
        assert 0 < running[0]["percent"] < 100


def test_without_the_option_the_other_origin_is_refused(project: ModuleType, page: Page) -> None:
    with elsewhere() as origin, serving(create_app(project.tracker)) as url:
        page.goto(origin + "/")
        result = project.tally.delay(2, 0.01)
        _watch(page, "refused", f"{url}/celery-progress/{result.id}/")
        page.wait_for_function("() => window.outcome.refused.errors.length > 0", timeout=GUARD_MS)
        seen = _outcome(page, "refused")
        assert seen["errors"][0] == "network: Network Error"  # the browser withheld the answer
        assert "resulted" not in seen
        assert result.get(timeout=GUARD_MS / 1000) == {"processed": 2}
