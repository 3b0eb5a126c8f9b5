"""The server as a subprocess over stdio, as an agent host starts it."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.abc import Process
from mcp import Client, ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

from .inproc import TASKS
from .waiting import eventually_async

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SERVER = StdioServerParameters(
    command=sys.executable, args=["-m", "tests.mcp.stdio_server"], cwd=str(ROOT)
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_progress_then_result_over_stdio_with_the_sdk_client() -> None:
    calls: list[tuple[float, float | None, str | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        calls.append((progress, total, message))

    async with Client(SERVER, mode="legacy") as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("demo.count", {"n": 6}, progress_callback=progress)
    assert set(TASKS) <= listed
    assert "demo.secret" not in listed
    assert result.structured_content == {"counted": 6, "label": "count"}
    values = [value for value, _, _ in calls]
    assert len(values) >= 3
    assert values == sorted(set(values))
    assert all(message for _, _, message in calls)


class RawPeer:
    """JSON-RPC lines to and from the server process, to see exactly what it sends."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []
        self._buffer = b""

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            self._buffer += await self.process.stdout.receive()
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        self.seen.append(message)
        return message

    async def until(self, match: Any) -> dict[str, Any]:
        with anyio.fail_after(30):
            while True:
                message = await self.receive()
                if match(message):
                    return message


@asynccontextmanager
async def raw_server() -> AsyncIterator[RawPeer]:
    command = [sys.executable, "-m", "tests.mcp.stdio_server"]
    async with await anyio.open_process(command, cwd=ROOT) as process:
        peer = RawPeer(process)
        await peer.send(
            {
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
        )
        await peer.until(lambda m: m.get("id") == 1)
        await peer.send({"method": "notifications/initialized"})
        try:
            yield peer
        finally:
            process.terminate()


async def test_a_cancelled_call_gets_no_response_and_its_session_ends_cancelled() -> None:
    async with raw_server() as peer:
        await peer.send(
            {
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "demo.count",
                    "arguments": {"n": 1000, "delay": 0.01},
                    "_meta": {"progressToken": "call-2"},
                },
            }
        )
        await peer.until(lambda m: m.get("method") == "notifications/progress")
        await peer.send(
            {
                "method": "notifications/cancelled",
                "params": {"requestId": 2, "reason": "the user pressed stop"},
            }
        )
        request_ids = iter(range(100, 10_000))

        async def cancelled_sessions() -> list[dict[str, Any]]:
            request_id = next(request_ids)
            arguments = {"state": "cancelled"}
            await peer.send(
                {
                    "id": request_id,
                    "method": "tools/call",
                    "params": {"name": "list_sessions", "arguments": arguments},
                }
            )
            answer = await peer.until(lambda m: m.get("id") == request_id)
            found: list[dict[str, Any]] = answer["result"]["structuredContent"]["sessions"]
            return found

        sessions = await eventually_async(
            cancelled_sessions, timeout_s=10, what="the cancellation showing in list_sessions"
        )
        await peer.send({"id": 3, "method": "ping"})
        await peer.until(lambda m: m.get("id") == 3)
    assert sessions[0]["state"]["reason"] == "the user pressed stop"
    assert sessions[0]["operation_id"] == "demo.count"
    assert not [m for m in peer.seen if m.get("id") == 2], "no response to a cancelled request"
    last_progress = max(
        i for i, m in enumerate(peer.seen) if m.get("method") == "notifications/progress"
    )
    assert last_progress < len(peer.seen) - 1


async def test_a_task_that_ends_sends_its_status_and_progress_on_the_connection() -> None:
    async with raw_server() as peer:
        await peer.send(
            {
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "demo.count",
                    "arguments": {"n": 5},
                    "task": {"ttl": 1000},
                    "_meta": {"progressToken": 7},
                },
            }
        )
        created = await peer.until(lambda m: m.get("id") == 2)
        task_id = created["result"]["task"]["taskId"]
        status = await peer.until(lambda m: m.get("method") == "notifications/tasks/status")
    assert status["params"]["taskId"] == task_id
    assert status["params"]["status"] == "completed"
    progress = [m["params"] for m in peer.seen if m.get("method") == "notifications/progress"]
    assert progress
    assert {p["progressToken"] for p in progress} == {7}


@asynccontextmanager
async def tasks_session() -> AsyncIterator[tuple[ClientSession, JSONRPCDispatcher[Any], list[Any]]]:
    """A client session whose dispatcher the test holds, for requests the SDK client lacks."""
    notifications: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            notifications.append(message)

    async with stdio_client(SERVER) as (read_stream, write_stream):
        dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(read_stream, write_stream)
        async with ClientSession(dispatcher=dispatcher, message_handler=on_message) as session:
            await session.initialize()
            yield session, dispatcher, notifications


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_mcp_tasks_start_poll_collect_list_and_cancel() -> None:
    async with tasks_session() as (session, dispatcher, notifications):
        assert session.initialize_result is not None
        capabilities = session.initialize_result.capabilities.model_dump(by_alias=True)
        assert capabilities["tasks"]["requests"] == {"tools": {"call": {}}}
        created = await dispatcher.send_raw_request(
            "tools/call",
            {"name": "demo.count", "arguments": {"n": 20}, "task": {"ttl": 60_000}},
            None,
        )
        task = created["task"]
        assert task["status"] == "working"
        assert task["ttl"] == 60_000
        task_id = task["taskId"]
        await session.subscribe_resource(f"progress://sessions/{task_id}")
        polled = await dispatcher.send_raw_request("tasks/get", {"taskId": task_id}, None)
        assert polled["taskId"] == task_id
        result = await dispatcher.send_raw_request("tasks/result", {"taskId": task_id}, None)
        assert result["structuredContent"] == {"counted": 20, "label": "count"}
        assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
        done = await dispatcher.send_raw_request("tasks/get", {"taskId": task_id}, None)
        assert done["status"] == "completed"
        listed = await dispatcher.send_raw_request("tasks/list", {}, None)
        assert task_id in [t["taskId"] for t in listed["tasks"]]

        long = await dispatcher.send_raw_request(
            "tools/call", {"name": "demo.count", "arguments": {"n": 2000}, "task": {}}, None
        )
        long_id = long["task"]["taskId"]
        cancelled = await dispatcher.send_raw_request("tasks/cancel", {"taskId": long_id}, None)
        assert cancelled["status"] == "cancelled"
        with pytest.raises(MCPError) as again:
            await dispatcher.send_raw_request("tasks/cancel", {"taskId": long_id}, None)
        assert again.value.error.code == types.INVALID_PARAMS
        with pytest.raises(MCPError) as unknown:
            await dispatcher.send_raw_request("tasks/get", {"taskId": "no-such-task"}, None)
        assert unknown.value.error.code == types.INVALID_PARAMS
        read = await session.read_resource(f"progress://sessions/{task_id}")

        def resource_updates() -> list[Any]:
            return [n for n in notifications if isinstance(n, types.ResourceUpdatedNotification)]

        # The last notifications may still be on their way.
        await eventually_async(resource_updates, what="a resource update")
    view = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert view["status"] == "completed"
    updated = resource_updates()
    assert updated
    assert {n.params.uri for n in updated} == {f"progress://sessions/{task_id}"}


async def test_the_sdk_default_client_on_2026_07_28_gets_progress_and_cancels() -> None:
    calls: list[tuple[float, float | None, str | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        calls.append((progress, total, message))

    async with Client(SERVER) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("demo.count", {"n": 5}, progress_callback=progress)
        with pytest.raises(MCPError):
            await client.call_tool(
                "demo.count", {"n": 500, "label": "quit"}, read_timeout_seconds=1.0
            )

        async def cancelled_sessions() -> list[dict[str, Any]]:
            listed = await client.call_tool("list_sessions", {"state": "cancelled"})
            assert listed.structured_content is not None
            found: list[dict[str, Any]] = listed.structured_content["sessions"]
            return found

        sessions = await eventually_async(
            cancelled_sessions, timeout_s=10, what="the cancellation showing in list_sessions"
        )
    assert result.structured_content == {"counted": 5, "label": "count"}
    assert [value for value, _, _ in calls] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert sessions[0]["state"]["reason"] == "timed out after 1.0s"
