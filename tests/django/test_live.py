"""The live stream under Django, served both ways: WSGI (from a thread) and ASGI (async).

Django reads an iterator of the other kind to its end before sending
anything, which an endless stream never reaches; these tests read the first
frames while the stream is still open, then close it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from celery_progress_mcp import InProgress, SubOperation
from celery_progress_mcp.django.runtime import runtime

pytestmark = pytest.mark.django_db(transaction=True)


def _frames(chunks: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) of each complete SSE frame in ``chunks``."""
    found = []
    for block in chunks.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def _update_of(session_id: str, frames: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    for event, data in frames:
        for update in data.get("updates", []) if event == "progress" else []:
            if update["id"] == session_id:
                found: dict[str, Any] = update
                return found
    return None


def test_under_wsgi_a_stream_is_read_from_a_thread(admin_client: Client) -> None:
    tracker = runtime().tracker.tracker
    session_id = tracker.create_session("wsgi_stream")
    response = admin_client.get(f"/progress/api/events?session_id={session_id}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert not response.is_async
    chunks: Iterator[bytes] = iter(response.streaming_content)
    seen = next(chunks)
    assert _frames(seen)[0][0] == "hello"
    tracker.update_progress(session_id, InProgress(percentage=40, current_step="wsgi"))
    while _update_of(session_id, _frames(seen)) is None:
        seen += next(chunks)
    assert _update_of(session_id, _frames(seen))["percentage"] == 40  # type: ignore[index]
    response.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_under_asgi_a_stream_is_async(admin_user: Any) -> None:
    tracker = runtime().tracker.tracker
    session_id = await sync_to_async(tracker.create_session)("asgi_stream")
    client = AsyncClient()
    await client.aforce_login(admin_user)
    response = await client.get(f"/progress/api/events?session_id={session_id}")
    assert response.status_code == 200
    assert response.is_async
    chunks: AsyncIterator[bytes] = aiter(response.streaming_content)
    seen = await anext(chunks)
    assert _frames(seen)[0][0] == "hello"
    update = InProgress(percentage=60, current_step="asgi")
    await sync_to_async(tracker.update_progress)(session_id, update)
    while _update_of(session_id, _frames(seen)) is None:
        seen += await anext(chunks)
    assert _update_of(session_id, _frames(seen))["percentage"] == 60  # type: ignore[index]
    await chunks.aclose()  # type: ignore[attr-defined]


def test_the_stream_needs_a_dashboard_user(client: Client) -> None:
    assert client.get("/progress/api/events").status_code == 403


def _answers(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Each ``progress`` answer of a celery-progress stream, as it arrives."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *blocks, rest = buffer.split(b"\n\n")
        buffer = rest
        for event, data in _frames(b"\n\n".join(blocks) + b"\n\n"):
            if event == "progress":
                yield data


def test_a_tasks_answers_stream_with_its_stages_until_it_ends(client: Client) -> None:
    tracker = runtime().tracker.tracker
    task_id = tracker.create_session("staged")
    tracker.add_sub_operations(task_id, [SubOperation(id="read", name="Read the rows")])
    tracker.start_sub_operation(task_id, "read")
    tracker.update_sub_operation(task_id, "read", percentage=25)
    response = client.get(f"/progress/{task_id}/stream/")  # open, as the polling URL is
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    answers = _answers(iter(response.streaming_content))
    first = next(answers)
    polled = client.get(f"/progress/{task_id}/").json()
    assert {k: v for k, v in first.items() if k != "sub_operations"} == polled
    assert first["sub_operations"] == [
        {"id": "read", "name": "Read the rows", "status": "active", "percentage": 25.0}
    ]
    tracker.complete_sub_operation(task_id, "read")
    tracker.complete_session(task_id, "12 rows")
    rest = list(answers)  # the stream ends with the task
    last = rest[-1] if rest else first
    assert last["complete"] is True
    assert last["sub_operations"][0]["status"] == "completed"


def test_streams_refuse_what_polling_refuses(client: Client) -> None:
    client.raise_request_exception = False
    assert client.get("/progress/g/nothing-knows-this-group/stream/").status_code == 404
    assert client.get("/progress/a.b/stream/").status_code == 404
    assert client.post("/progress/some-task/stream/").status_code == 405
