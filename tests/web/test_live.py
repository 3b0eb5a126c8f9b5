"""Live updates over SSE, through a real uvicorn server: coalescing, resuming, filters, sources."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from celery_progress_mcp import (
    InProgress,
    ProgressConfig,
    ProgressEvent,
    ProgressEventType,
    ProgressTracker,
)
from celery_progress_mcp.monitor.live import (
    MAX_QUEUED_FRAMES,
    LiveHub,
    StreamFilter,
    _Client,
    merge_events,
)
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.web import create_app

from .conftest import TOKEN
from .server import serving
from .sse import Frame, frames, read_until

#: Guards a hung stream; no assertion depends on it.
READ_TIMEOUT_S = 20.0


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT_S)) as client:
        yield client


def _updates(seen: list[Frame]) -> list[dict[str, Any]]:
    progress = [frame for frame in seen if frame.event == "progress"]
    return [update for frame in progress for update in frame.data["updates"]]


def _reached(session_id: str, percentage: float) -> Any:
    def done(seen: list[Frame]) -> bool:
        return any(
            u["id"] == session_id and u.get("percentage") == percentage for u in _updates(seen)
        )

    return done


def _in_background(work: Any) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_updates_arrive_live(tracker: ProgressTracker, http: httpx.Client) -> None:
    session_id = tracker.create_session("live")
    with serving(create_app(tracker)) as url, http.stream("GET", f"{url}/api/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = frames(response)
        hello = next(stream)
        assert hello.event == "hello"
        tracker.update_progress(session_id, InProgress(percentage=30, current_step="load"))
        seen = read_until(stream, _reached(session_id, 30.0))
    update = _updates(seen)[-1]
    assert update["status"] == "in_progress"
    assert update["current_step"] == "load"
    assert update["operation_id"] == "live"
    assert int(seen[-1].id or 0) == update["seq"] == tracker.store.last_seq()


def test_each_frame_holds_a_session_at_most_once(
    tracker: ProgressTracker, http: httpx.Client
) -> None:
    ids = [tracker.create_session("burst") for _ in range(5)]

    def burst() -> None:
        for step in range(1, 201):
            for session_id in ids:
                tracker.update_progress(session_id, InProgress(percentage=step / 2))

    with serving(create_app(tracker)) as url, http.stream("GET", f"{url}/api/events") as response:
        stream = frames(response)
        next(stream)
        _in_background(burst).join()
        seen = read_until(
            stream,
            lambda s: all(_reached(i, 100.0)(s) for i in ids),
        )
    progress = [frame for frame in seen if frame.event == "progress"]
    for frame in progress:
        in_frame = [update["id"] for update in frame.data["updates"]]
        assert len(in_frame) == len(set(in_frame))
    # 1,000 events, far fewer updates delivered: they were coalesced.
    assert len(_updates(seen)) < 1000
    seqs = [int(frame.id or 0) for frame in progress]
    assert seqs == sorted(seqs)


def test_last_event_id_resumes_from_the_log(tracker: ProgressTracker, http: httpx.Client) -> None:
    session_id = tracker.create_session("resume")
    with serving(create_app(tracker)) as url:
        with http.stream("GET", f"{url}/api/events") as response:
            stream = frames(response)
            next(stream)
            tracker.update_progress(session_id, InProgress(percentage=10))
            seen = read_until(stream, _reached(session_id, 10.0))
            last_id = seen[-1].id
        # Away: these happen while no client listens.
        tracker.update_progress(session_id, InProgress(percentage=60, current_step="away"))
        other = tracker.create_session("born while away")
        headers = {"Last-Event-ID": str(last_id)}
        with http.stream("GET", f"{url}/api/events", headers=headers) as response:
            stream = frames(response)
            assert next(stream).event == "hello"
            replayed = next(stream)
    assert replayed.event == "progress"
    by_id = {update["id"]: update for update in replayed.data["updates"]}
    assert by_id[session_id]["percentage"] == 60.0
    assert by_id[session_id]["current_step"] == "away"
    assert by_id[other]["created"] is True
    assert int(replayed.id or 0) == tracker.store.last_seq()


def test_since_from_a_later_log_asks_for_a_resync(
    tracker: ProgressTracker, http: httpx.Client
) -> None:
    tracker.create_session("x")
    with (
        serving(create_app(tracker)) as url,
        http.stream("GET", f"{url}/api/events?since=999999") as response,
    ):
        stream = frames(response)
        next(stream)
        assert next(stream).event == "resync"


def test_watching_some_sessions(tracker: ProgressTracker, http: httpx.Client) -> None:
    watched = tracker.create_session("watched")
    ignored = tracker.create_session("ignored")
    query = f"session_id={watched}&include_new=1"
    with (
        serving(create_app(tracker)) as url,
        http.stream("GET", f"{url}/api/events?{query}") as response,
    ):
        stream = frames(response)
        next(stream)
        tracker.update_progress(ignored, InProgress(percentage=50))
        newcomer = tracker.create_session("new")
        tracker.update_progress(newcomer, InProgress(percentage=5))
        tracker.update_progress(watched, InProgress(percentage=70))
        seen = read_until(stream, _reached(watched, 70.0))
        updates = _updates(seen)
    assert ignored not in {u["id"] for u in updates}
    assert any(u["id"] == newcomer and u.get("created") for u in updates)


def test_stream_requires_the_token(tracker: ProgressTracker, http: httpx.Client) -> None:
    with serving(create_app(tracker, token=TOKEN)) as url:
        assert http.get(f"{url}/api/events").status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with http.stream("GET", f"{url}/api/events", headers=headers) as response:
            assert response.status_code == 200
            assert next(frames(response)).event == "hello"


def test_bad_last_event_id_is_400(tracker: ProgressTracker, http: httpx.Client) -> None:
    with serving(create_app(tracker)) as url:
        response = http.get(f"{url}/api/events", headers={"Last-Event-ID": "abc"})
        assert response.status_code == 400


def test_log_source_sees_another_trackers_writes(tmp_path: Path, http: httpx.Client) -> None:
    """A dashboard in its own process: its bus hears nothing, the shared store's log does."""
    url_db = f"sqlite:///{tmp_path / 'progress.db'}"
    config = ProgressConfig(update_interval_ms=0)
    with (
        ProgressTracker(config, store=SqlStore(url_db)) as dashboard_side,
        ProgressTracker(config, store=SqlStore(url_db)) as worker_side,
    ):
        app = create_app(dashboard_side)
        assert app.state.dashboard.hub.source_kind == "log"
        session_id = worker_side.create_session("elsewhere")
        with serving(app) as url, http.stream("GET", f"{url}/api/events") as response:
            stream = frames(response)
            next(stream)
            worker_side.update_progress(session_id, InProgress(percentage=80))
            seen = read_until(stream, _reached(session_id, 80.0))
        assert _updates(seen)[-1]["status"] == "in_progress"
        dashboard_side.store.close()
        worker_side.store.close()


# -- the hub's parts, without a server ---------------------------------------------------------


def _event(seq: int, session_id: str, kind: ProgressEventType, **data: Any) -> ProgressEvent:
    from datetime import UTC, datetime

    return ProgressEvent(
        seq=seq,
        session_id=session_id,
        operation_id="op",
        event_type=kind,
        timestamp=datetime(2025, 6, 18, tzinfo=UTC),
        data=data,
    )


def test_merge_keeps_the_latest_values_and_flags() -> None:
    kind = ProgressEventType
    merged = merge_events(
        [
            _event(1, "a", kind.SESSION_CREATED, status="initializing", metadata={"big": "x"}),
            _event(2, "a", kind.PROGRESS_UPDATED, status="in_progress", percentage=10.0),
            _event(3, "b", kind.PROGRESS_UPDATED, status="in_progress", percentage=5.0),
            _event(4, "a", kind.SUB_OPERATION_STARTED, sub_operation_id="s"),
            _event(5, "a", kind.PROGRESS_UPDATED, status="in_progress", percentage=20.0),
        ]
    )
    assert list(merged) == ["a", "b"]
    a = merged["a"]
    assert (a["percentage"], a["seq"], a["event"]) == (20.0, 5, "ProgressUpdated")
    assert a["created"] is True
    assert a["subs"] is True
    assert "metadata" not in a


def test_a_client_that_falls_behind_gets_one_resync() -> None:
    async def scenario() -> list[bytes]:
        client = _Client(StreamFilter())
        for seq in range(1, MAX_QUEUED_FRAMES + 2):
            client.offer(f"frame {seq}".encode(), seq)
        queued = []
        while not client.frames.empty():
            queued.append(client.frames.get_nowait())
        return queued

    queued = asyncio.run(scenario())
    assert len(queued) == 1
    assert queued[0].startswith(b"id: ")
    assert b"event: resync" in queued[0]


def test_unknown_live_source_is_refused(tracker: ProgressTracker) -> None:
    from celery_progress_mcp import InvalidProgress
    from celery_progress_mcp.monitor.tracker_access import TrackerAccess

    with pytest.raises(InvalidProgress):
        LiveHub(TrackerAccess(tracker), source="carrier pigeon")


def test_a_watched_session_resumes_alone(tracker: ProgressTracker, http: httpx.Client) -> None:
    watched = tracker.create_session("watched")
    since = tracker.store.last_seq()
    other = tracker.create_session("other")
    tracker.update_progress(other, InProgress(percentage=5))
    tracker.update_progress(watched, InProgress(percentage=45, current_step="while away"))
    tracker.update_progress(other, InProgress(percentage=6))
    query = f"session_id={watched}&since={since}"
    with (
        serving(create_app(tracker)) as url,
        http.stream("GET", f"{url}/api/events?{query}") as response,
    ):
        stream = frames(response)
        assert next(stream).event == "hello"
        replayed = next(stream)
    assert [update["id"] for update in replayed.data["updates"]] == [watched]
    assert replayed.data["updates"][0]["current_step"] == "while away"
