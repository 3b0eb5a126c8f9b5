"""celery-progress's answers as a live stream, read from the generator itself (no server).

Each frame must hold what the polling endpoint answers at that moment
(``CompatReader``), plus ``sub_operations``; the tests compare with the
reader's own answer rather than with a copy of it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from celery import Celery
from celery.backends.filesystem import FilesystemBackend
from celery.exceptions import Retry

from celery_progress_mcp import (
    InProgress,
    ProgressTracker,
    SessionNotFound,
    SubOperation,
)
from celery_progress_mcp.monitor.api import Reply
from celery_progress_mcp.monitor.compat_reader import CompatReader
from celery_progress_mcp.monitor.compat_stream import open_compat_stream
from celery_progress_mcp.monitor.live import LiveHub
from celery_progress_mcp.monitor.tracker_access import TrackerAccess

#: Guards a stream that hangs, in s; no assertion depends on it.
GUARD_S = 10.0
#: A re-read interval no test waits for: what arrives came from the hub.
NEVER_S = 3600.0
#: A re-read interval for tests that follow the result backend alone, in s.
OFTEN_S = 0.01

T = TypeVar("T")


class Live:
    """A hub and a reader over one tracker, as an app builds them."""

    def __init__(
        self,
        tracker: ProgressTracker,
        celery_app: Celery | None,
        *,
        max_streams: int = 100,
        heartbeat_s: float = 15.0,
    ) -> None:
        self.access = TrackerAccess(tracker)
        self.hub = LiveHub(
            self.access, interval_s=0.01, heartbeat_s=heartbeat_s, max_streams=max_streams
        )
        self.reader = CompatReader(self.access, celery_app)

    async def open(
        self, target_id: str, *, group: bool = False, reread_s: float = NEVER_S
    ) -> AsyncGenerator[bytes] | Reply:
        return await open_compat_stream(
            self.hub, self.access, self.reader, target_id, group=group, reread_s=reread_s
        )

    async def stream(
        self, target_id: str, *, group: bool = False, reread_s: float = NEVER_S
    ) -> AsyncGenerator[bytes]:
        opened = await self.open(target_id, group=group, reread_s=reread_s)
        assert not isinstance(opened, Reply), opened
        return opened


def _parse(frame: bytes) -> tuple[str, Any]:
    text = frame.decode()
    if text.startswith(":"):
        return "comment", text
    assert text.endswith("\n\n"), text
    fields = dict(line.split(": ", 1) for line in text.strip().split("\n"))
    return fields["event"], json.loads(fields["data"])


async def _next(stream: AsyncIterator[bytes]) -> tuple[str, Any]:
    return _parse(await asyncio.wait_for(anext(stream), GUARD_S))


async def _ended(stream: AsyncIterator[bytes]) -> bool:
    try:
        await asyncio.wait_for(anext(stream), GUARD_S)
    except StopAsyncIteration:
        return True
    return False


async def _until(check: Callable[[], bool]) -> None:
    async def wait() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), GUARD_S)


def _run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await scenario()

    return asyncio.run(main())


# -- a tracked task: its session -------------------------------------------------------------


def test_the_first_frame_is_the_polling_answer_with_the_sub_operations(
    tracker: ProgressTracker, celery_app: Celery
) -> None:
    task_id = tracker.create_session("staged", session_id="staged-1")
    tracker.add_sub_operations(
        task_id, [SubOperation(id="load", name="Load <rows>"), SubOperation(id="sum", name="Sum")]
    )
    tracker.start_sub_operation(task_id, "load")
    tracker.update_sub_operation(task_id, "load", percentage=100 / 3)
    live = Live(tracker, celery_app)

    async def scenario() -> tuple[tuple[str, Any], dict[str, Any]]:
        stream = await live.stream(task_id)
        first = await _next(stream)
        polled = await live.reader.task(task_id)
        await stream.aclose()
        return first, polled

    (event, data), polled = _run(scenario)
    assert event == "progress"
    assert data == {
        **polled,
        "sub_operations": [
            {"id": "load", "name": "Load <rows>", "status": "active", "percentage": 33.33},
            {"id": "sum", "name": "Sum", "status": "pending", "percentage": 0.0},
        ],
    }
    assert polled["state"] == "PROGRESS"


def test_each_change_sends_the_new_answer_and_the_end_closes_the_stream(
    tracker: ProgressTracker, celery_app: Celery
) -> None:
    task_id = tracker.create_session("tracked", session_id="tracked-1")
    tracker.update_progress(task_id, InProgress(percentage=10, current_step="rows"))
    live = Live(tracker, celery_app)

    async def scenario() -> list[tuple[str, Any]]:
        # No re-read is ever due: each new frame is the hub's news.
        stream = await live.stream(task_id, reread_s=NEVER_S)
        seen = [await _next(stream)]
        tracker.update_progress(task_id, InProgress(percentage=60, current_step="more rows"))
        seen.append(await _next(stream))
        tracker.complete_session(task_id, "60 rows")
        seen.append(await _next(stream))
        assert await _ended(stream)
        await _until(lambda: live.hub.client_count == 0)
        return seen

    seen = _run(scenario)
    assert [event for event, _ in seen] == ["progress"] * 3
    assert [data["progress"]["percent"] for _, data in seen] == [10.0, 60.0, 100]
    assert seen[1][1]["progress"]["description"] == "more rows"
    last = seen[-1][1]
    assert (last["state"], last["complete"], last["success"]) == ("SUCCESS", True, True)
    assert last["result"] == "60 rows"  # the backend knows nothing of it: the session's summary
    assert last["sub_operations"] == []


def test_a_group_lists_its_members_as_sub_operations(
    tracker: ProgressTracker, celery_app: Celery
) -> None:
    group_id = tracker.create_session("group", session_id="group-1")
    members = [SubOperation(id=f"member-{n}", name=f"webproj.tally #{n}") for n in (1, 2)]
    tracker.add_sub_operations(group_id, members)
    tracker.start_sub_operation(group_id, "member-1")
    live = Live(tracker, celery_app)

    async def scenario() -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        stream = await live.stream(group_id, group=True)
        seen = [await _next(stream)]
        tracker.update_sub_operation(group_id, "member-1", percentage=50)
        seen.append(await _next(stream))
        polled = await live.reader.group(group_id)
        await stream.aclose()
        return seen, polled

    seen, polled = _run(scenario)
    assert seen[-1][1] == {
        **polled,
        "sub_operations": [
            {"id": "member-1", "name": "webproj.tally #1", "status": "active", "percentage": 50.0},
            {"id": "member-2", "name": "webproj.tally #2", "status": "pending", "percentage": 0.0},
        ],
    }
    assert seen[0][1]["progress"]["percent"] == 0.0
    assert polled["progress"]["percent"] == 25.0


def test_an_unknown_group_is_not_found_and_holds_no_stream(
    tracker: ProgressTracker, celery_app: Celery
) -> None:
    live = Live(tracker, celery_app)

    async def scenario() -> None:
        with pytest.raises(SessionNotFound):
            await live.open("no-such-group", group=True)

    _run(scenario)
    assert live.hub.client_count == 0


# -- an untracked task: the result backend alone ----------------------------------------------


def test_an_untracked_task_advances_by_re_reading_its_backend(
    tracker: ProgressTracker, celery_app: Celery
) -> None:
    backend = celery_app.backend
    meta = {"pending": False, "current": 1, "total": 4, "percent": 25.0, "description": "rows"}
    backend.store_result("plain-1", meta, "PROGRESS")
    live = Live(tracker, celery_app)

    async def scenario() -> list[tuple[str, Any]]:
        stream = await live.stream("plain-1", reread_s=OFTEN_S)
        seen = [await _next(stream)]
        backend.store_result("plain-1", {**meta, "current": 3, "percent": 75.0}, "PROGRESS")
        seen.append(await _next(stream))
        backend.store_result("plain-1", {"processed": 4}, "SUCCESS")
        seen.append(await _next(stream))
        assert await _ended(stream)
        return seen

    seen = _run(scenario)
    assert [data["progress"]["percent"] for _, data in seen] == [25.0, 75.0, 100]
    assert seen[0][1] == {
        "state": "PROGRESS",
        "complete": False,
        "success": None,
        "progress": meta,
        "sub_operations": [],
    }
    assert seen[-1][1]["result"] == {"processed": 4}


def test_a_saved_group_of_untracked_tasks_advances_by_re_reading(
    tracker: ProgressTracker, celery_app: Celery
) -> None:
    backend = celery_app.backend
    members = [celery_app.AsyncResult(f"member-{n}") for n in (1, 2)]
    celery_app.GroupResult("saved-1", members).save()
    backend.store_result("member-1", 1, "SUCCESS")
    live = Live(tracker, celery_app)

    async def scenario() -> list[tuple[str, Any]]:
        stream = await live.stream("saved-1", group=True, reread_s=OFTEN_S)
        seen = [await _next(stream)]
        backend.store_result("member-2", 2, "SUCCESS")
        seen.append(await _next(stream))
        assert await _ended(stream)
        return seen

    (_, first), (_, last) = _run(scenario)
    assert (first["complete"], first["progress"]["percent"]) == (False, 50.0)
    assert (last["complete"], last["success"], last["result"]) == (True, True, [1, 2])
    assert first["sub_operations"] == last["sub_operations"] == []


def test_a_retry_is_followed_until_the_next_attempt_ends(
    tracker: ProgressTracker, celery_app: Celery
) -> None:
    backend = celery_app.backend
    traceback = "Traceback (most recent call last):\ncelery.exceptions.Retry: Retry in 7s"
    backend.store_result("plain-2", Retry("busy", when=7), "RETRY", traceback=traceback)
    live = Live(tracker, celery_app)

    async def scenario() -> list[tuple[str, Any]]:
        stream = await live.stream("plain-2", reread_s=OFTEN_S)
        seen = [await _next(stream)]
        backend.store_result("plain-2", 42, "SUCCESS")
        seen.append(await _next(stream))
        assert await _ended(stream)
        return seen

    seen = _run(scenario)
    retry, success = (data for _, data in seen)
    assert (retry["state"], retry["complete"]) == ("RETRY", True)  # complete, yet not the end
    assert retry["result"]["next_retry_seconds"] == 7
    assert (success["state"], success["result"]) == ("SUCCESS", 42)


def test_an_unchanged_answer_is_not_sent_again_and_a_comment_keeps_the_stream_open(
    tracker: ProgressTracker,
) -> None:
    live = Live(tracker, None, heartbeat_s=0.05)

    async def scenario() -> list[tuple[str, Any]]:
        stream = await live.stream("never-sent", reread_s=OFTEN_S)
        seen = [await _next(stream), await _next(stream)]
        await stream.aclose()
        return seen

    (event, data), ping = _run(scenario)
    assert (event, data["state"]) == ("progress", "PENDING")
    # Read many times over, unchanged: only the heartbeat followed.
    assert ping == ("comment", ": ping\n\n")


# -- failures ----------------------------------------------------------------------------------


def _unreadable(self: Any, task_id: str, cache: bool = True) -> Any:
    raise ConnectionError("backend down at redis://secret-host:6379")


def test_a_backend_failing_later_is_an_error_frame_then_the_end(
    tracker: ProgressTracker, celery_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    celery_app.backend.store_result("plain-3", None, "STARTED")
    live = Live(tracker, celery_app)

    async def scenario() -> list[tuple[str, Any]]:
        stream = await live.stream("plain-3", reread_s=OFTEN_S)
        seen = [await _next(stream)]
        monkeypatch.setattr(FilesystemBackend, "get_task_meta", _unreadable)
        seen.append(await _next(stream))
        assert await _ended(stream)
        polled = await live.open("plain-4")  # what the polling endpoint answers now
        assert isinstance(polled, Reply)
        seen.append(("polled", polled.body))
        return seen

    seen = _run(scenario)
    assert seen[0][1]["state"] == "STARTED"
    event, data = seen[1]
    assert event == "error"
    assert (
        data
        == seen[2][1]
        == {
            "error": "result_backend_unavailable",
            "detail": "the result backend could not be read",
        }
    )


def test_a_backend_failing_at_once_is_the_polling_endpoints_reply(
    tracker: ProgressTracker, celery_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FilesystemBackend, "get_task_meta", _unreadable)
    live = Live(tracker, celery_app)
    opened = _run(lambda: live.open("plain-5"))
    assert isinstance(opened, Reply)
    assert opened.status == 503
    assert opened.body["error"] == "result_backend_unavailable"
    assert live.hub.client_count == 0


def test_a_full_hub_refuses_another_stream(tracker: ProgressTracker) -> None:
    live = Live(tracker, None, max_streams=1)

    async def scenario() -> Reply | AsyncGenerator[bytes]:
        held = await live.stream("first")
        refused = await live.open("second")
        await held.aclose()
        return refused

    refused = _run(scenario)
    assert isinstance(refused, Reply)
    assert refused.status == 503
    assert refused.body["error"] == "too_many_streams"
    assert refused.headers["retry-after"]


def test_closing_the_stream_lets_go_of_the_hub(tracker: ProgressTracker) -> None:
    live = Live(tracker, None)

    async def scenario() -> None:
        stream = await live.stream("watched")
        await _next(stream)
        assert live.hub.client_count == 1
        await stream.aclose()
        await _until(lambda: live.hub.client_count == 0)

    _run(scenario)
