"""The session tools (get_progress, list_sessions, cancel_session, progress_stats) and resources."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from celery_progress_mcp import InProgress, ProgressTracker
from celery_progress_mcp.mcp import build_server
from celery_progress_mcp.mcp.server import SESSION_META_KEY

from .inproc import TASKS
from .test_server import connected

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_get_progress_list_sessions_and_stats(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    async with connected(demo_app, tracker) as (client, _):
        done = await client.call_tool("demo.count", {"n": 3})
        session_id = (done.meta or {})[SESSION_META_KEY]
        progress = await client.call_tool("get_progress", {"session_id": session_id})
        listed = await client.call_tool("list_sessions", {"state": "completed", "limit": 200})
        stats = await client.call_tool("progress_stats", {})
        missing = await client.call_tool("get_progress", {"session_id": "no-such-session"})
    assert progress.structured_content is not None
    assert progress.structured_content["status"] == "completed"
    assert progress.structured_content["percentage"] == 100.0
    assert listed.structured_content is not None
    assert session_id in [s["id"] for s in listed.structured_content["sessions"]]
    assert stats.structured_content is not None
    assert stats.structured_content["total_completed"] >= 1
    assert missing.is_error


async def test_sessions_of_tasks_outside_the_allowlist_are_not_shown(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    hidden = demo_app.tasks["demo.secret"].apply_async()
    hidden.get(timeout=10)
    async with connected(demo_app, tracker) as (client, _):
        shown = await client.call_tool("get_progress", {"session_id": hidden.id})
        listed = await client.call_tool("list_sessions", {"limit": 200})
        with pytest.raises(MCPError) as caught:
            await client.read_resource(f"progress://sessions/{hidden.id}")
    assert shown.is_error
    assert listed.structured_content is not None
    assert hidden.id not in [s["id"] for s in listed.structured_content["sessions"]]
    assert caught.value.error.code == -32002


async def test_cancel_session_ends_a_running_call_as_a_tool_error(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    results: list[types.CallToolResult] = []
    async with connected(demo_app, tracker) as (client, _):
        started = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            started.set()

        async def call() -> None:
            arguments = {"n": 1000, "label": "victim"}
            results.append(
                await client.call_tool("demo.count", arguments, progress_callback=on_progress)
            )

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await started.wait()
            running = tracker.list_sessions(status="in_progress", operation_id="demo.count")
            victim = next(s for s in running if s.state.current_step.startswith("victim"))  # type: ignore[union-attr]
            cancelled = await client.call_tool(
                "cancel_session", {"session_id": victim.id, "reason": "enough"}
            )
            again = await client.call_tool(
                "cancel_session", {"session_id": victim.id, "reason": "x"}
            )
    assert cancelled.structured_content is not None
    assert cancelled.structured_content["status"] == "cancelled"
    assert cancelled.structured_content["state"]["reason"] == "enough"
    assert again.is_error
    assert results[0].is_error
    assert "enough" in text_of(results[0])


async def test_session_resources_are_listed_and_read(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    async with connected(demo_app, tracker) as (client, _):
        done = await client.call_tool("demo.count", {"n": 2})
        session_id = (done.meta or {})[SESSION_META_KEY]
        templates = await client.list_resource_templates()
        resources = await client.list_resources()
        read = await client.read_resource(f"progress://sessions/{session_id}")
    assert [t.uri_template for t in templates.resource_templates] == ["progress://sessions/{id}"]
    assert f"progress://sessions/{session_id}" in [str(r.uri) for r in resources.resources]
    content = read.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert json.loads(content.text)["status"] == "completed"


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_subscriptions_of_a_connection_are_forgotten_when_it_closes(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker)
    async with Client(server, mode="legacy") as client:
        await client.subscribe_resource("progress://sessions/one")
        await client.subscribe_resource("progress://sessions/two")
        await client.unsubscribe_resource("progress://sessions/two")
        assert server.subscriptions.subscribed_sessions == {"one"}
    # The connection's exit stack ran the cleanup registered at subscribe.
    assert server.subscriptions.subscribed_sessions == set()


async def test_a_2025_client_is_told_it_may_subscribe(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker)
    async with Client(server, mode="legacy") as client:
        capabilities = client.server_capabilities
    assert capabilities.resources is not None
    assert capabilities.resources.subscribe is True


async def test_a_2026_listener_hears_of_its_session_and_no_other(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker)
    watched = tracker.create_session("demo.count")
    other = tracker.create_session("demo.count")
    events: list[ResourceUpdated] = []
    async with Client(server) as client:
        assert client.protocol_version == "2026-07-28"
        uri = f"progress://sessions/{watched}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            tracker.update_progress(other, InProgress(percentage=10.0))
            tracker.update_progress(watched, InProgress(percentage=10.0))
            with anyio.fail_after(10):
                async for event in subscription:
                    assert isinstance(event, ResourceUpdated)
                    events.append(event)
                    break
            tracker.complete_session(other)
            tracker.complete_session(watched, "done")
            with anyio.fail_after(10):
                async for event in subscription:
                    assert isinstance(event, ResourceUpdated)
                    events.append(event)
                    break
    assert [event.uri for event in events] == [uri, uri]
