"""The server with the official SDK client, over the SDK's in-memory transport.

The worker is real (threads, in this process); see inproc.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from celery_progress_mcp import ProgressTracker
from celery_progress_mcp.mcp import RunOptions, ServerOptions, build_server
from celery_progress_mcp.mcp.server import SESSION_META_KEY

from .inproc import TASKS, make_app

pytestmark = pytest.mark.anyio

LOOKAROUND = {"get_progress", "list_sessions", "cancel_session", "progress_stats"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def connected(
    app: Any, tracker: ProgressTracker, **options: Any
) -> AsyncIterator[tuple[Client, list[types.ServerNotification]]]:
    run = RunOptions(**{"poll_interval_s": 0.2, **options.pop("run", {})})
    server = build_server(app, TASKS, tracker=tracker, options=ServerOptions(run=run, **options))
    seen: list[types.ServerNotification] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            seen.append(message)

    async with Client(server, mode="legacy", message_handler=on_message) as client:
        yield client, seen


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.calls.append((progress, total, message))


async def test_the_server_is_the_sdks_mcpserver(demo_app: Any, tracker: ProgressTracker) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker)
    assert isinstance(server, MCPServer)
    # Its own public methods answer as the wire does.
    assert {tool.name for tool in await server.list_tools()} == set(TASKS) | LOOKAROUND
    result = await server.call_tool("demo.count", {"n": 2})
    assert result.structured_content == {"counted": 2, "label": "count"}
    with pytest.raises(MCPError):
        await server.call_tool("demo.count", {"n": "two"})


async def test_the_tools_are_the_allowlist_and_the_lookaround_tools(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    async with connected(demo_app, tracker) as (client, _):
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == set(TASKS) | LOOKAROUND
    async with connected(demo_app, tracker, lookaround_tools=False) as (client, _):
        listed = (await client.list_tools()).tools
    assert {tool.name for tool in listed} == set(TASKS)
    count = next(tool for tool in listed if tool.name == "demo.count")
    assert count.execution is not None
    assert count.execution.task_support == "optional"
    assert count.description == "Count to ``n``, one step every ``delay`` seconds."
    assert count.input_schema["required"] == ["n"]
    assert count.input_schema["properties"]["n"]["type"] == "integer"


async def test_a_call_with_a_token_gets_increasing_progress_then_its_result(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    progress = Progress()
    async with connected(demo_app, tracker) as (client, _):
        result = await client.call_tool("demo.count", {"n": 8}, progress_callback=progress)
    assert not result.is_error
    assert result.structured_content == {"counted": 8, "label": "count"}
    assert len(progress.calls) >= 3
    values = [p for p, _, _ in progress.calls]
    assert values == sorted(set(values)), "progress must strictly increase"
    assert all(total == 8 for _, total, _ in progress.calls)
    assert all(message and message.startswith("count ") for _, _, message in progress.calls)
    session_id = (result.meta or {})[SESSION_META_KEY]
    assert tracker.get_session(session_id).status == "completed"


async def test_every_update_is_a_notice_even_when_a_poll_sees_the_end_first(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    # Polling all the time, the server often learns from the store that the
    # task has ended while the bus is still bringing its last updates.
    async with connected(demo_app, tracker, run={"poll_interval_s": 0.001}) as (client, _):
        for _ in range(5):
            progress = Progress()
            await client.call_tool("demo.count", {"n": 30, "delay": 0}, progress_callback=progress)
            assert [p for p, _, _ in progress.calls] == pytest.approx(list(range(1, 31)))


async def test_a_call_without_a_token_gets_no_progress(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    async with connected(demo_app, tracker) as (client, seen):
        result = await client.call_tool("demo.count", {"n": 5})
    assert not result.is_error
    assert not [n for n in seen if isinstance(n, types.ProgressNotification)]


async def test_a_failing_task_is_a_tool_error(demo_app: Any, tracker: ProgressTracker) -> None:
    async with connected(demo_app, tracker) as (client, _):
        result = await client.call_tool("demo.fail", {"message": "disk on fire"})
    assert result.is_error
    assert "disk on fire" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("demo.count", {"n": "many"}),
        ("demo.count", {}),
        ("demo.count", {"n": 1, "colour": "red"}),
        ("demo.secret", {}),
        ("no.such.task", {}),
        ("get_progress", {}),
    ],
)
async def test_bad_calls_are_json_rpc_errors_and_the_server_keeps_serving(
    demo_app: Any, tracker: ProgressTracker, name: str, arguments: dict[str, Any]
) -> None:
    async with connected(demo_app, tracker) as (client, _):
        with pytest.raises(MCPError) as caught:
            await client.call_tool(name, arguments)
        assert caught.value.error.code == types.INVALID_PARAMS
        result = await client.call_tool("demo.count", {"n": 1})
    assert not result.is_error


async def test_ten_concurrent_calls_each_get_only_their_own_progress(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    progress = {i: Progress() for i in range(10)}
    results: dict[int, types.CallToolResult] = {}
    async with connected(demo_app, tracker) as (client, _):

        async def call(i: int) -> None:
            arguments = {"n": 4 + i, "label": f"call{i}"}
            results[i] = await client.call_tool(
                "demo.count", arguments, progress_callback=progress[i]
            )

        async with anyio.create_task_group() as group:
            for i in range(10):
                group.start_soon(call, i)
    for i in range(10):
        assert results[i].structured_content == {"counted": 4 + i, "label": f"call{i}"}
        calls = progress[i].calls
        assert calls
        assert all(total == 4 + i for _, total, _ in calls)
        assert all(message and message.startswith(f"call{i} ") for _, _, message in calls)
        values = [p for p, _, _ in calls]
        assert values == sorted(set(values))


async def test_a_client_that_gives_up_cancels_the_session_and_the_task(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    progress = Progress()
    async with connected(demo_app, tracker) as (client, _):
        with pytest.raises(MCPError) as caught:
            await client.call_tool(
                "demo.count",
                {"n": 500, "delay": 0.02},
                progress_callback=progress,
                read_timeout_seconds=1.0,
            )
        assert caught.value.error.code == types.REQUEST_TIMEOUT
    cancelled = tracker.list_sessions(status="cancelled", operation_id="demo.count")
    assert cancelled
    assert "timed out" in cancelled[0].state.reason  # type: ignore[union-attr]
    result = demo_app.AsyncResult(cancelled[0].id).get(timeout=10)
    assert "stopped_at" in result, "the task stopped cooperatively"


async def test_a_task_no_worker_picks_up_fails_clearly(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    async with connected(demo_app, tracker, run={"pickup_timeout_s": 1.0}) as (client, _):
        result = await client.call_tool("demo.orphan", {})
    assert result.is_error
    assert "no worker picked up the task within 1 s" in result.content[0].text  # type: ignore[union-attr]
    session_id = (result.meta or {})[SESSION_META_KEY]
    assert tracker.get_session(session_id).status == "cancelled"


async def test_a_task_the_broker_refuses_is_a_tool_error(tracker: ProgressTracker) -> None:
    app = make_app(tracker, broker="redis://127.0.0.1:1/0")  # nothing listens there
    app.conf.task_publish_retry = False
    app.conf.broker_connection_timeout = 1.0
    async with connected(app, tracker) as (client, _):
        result = await client.call_tool("demo.count", {"n": 1})
    assert result.is_error
    assert "could not send task demo.count" in result.content[0].text  # type: ignore[union-attr]
    session_id = (result.meta or {})[SESSION_META_KEY]
    assert tracker.get_session(session_id).status == "failed"
