"""End to end: the MCP server as a subprocess, a real prefork worker, Redis, a shared store.

The project (project.py) uses the Celery integration as a user would:
``install(app)`` and ``@progress_task``; events reach the server over the
kombu bus on the Redis broker; the store is one SQLite file.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from celery_progress_mcp.testing import eventually

from ..servers import server_url
from .realworker import ROOT, project_env, running_worker, serving_http
from .test_stdio import RawPeer
from .waiting import eventually_async

pytestmark = [pytest.mark.anyio, pytest.mark.server, pytest.mark.slow]

TOOLS = ["mcpproj.count", "mcpproj.fail", "mcpproj.add", "mcpproj.die", "mcpproj.sleepy"]
LOOKAROUND = {"get_progress", "list_sessions", "cancel_session", "progress_stats"}
TOKEN = "e2e-token"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    redis_url = server_url("redis")
    return project_env(redis_url, tmp_path_factory.mktemp("mcp-e2e") / "progress.db")


@pytest.fixture(scope="module")
def project(env: dict[str, str]) -> Iterator[ModuleType]:
    """The project as imported in this process (for looking at sessions and results)."""
    integration = importlib.import_module("celery_progress_mcp.celery")
    if not hasattr(integration, "install"):
        pytest.skip("the Celery integration (issue 4) is not in this tree")
    saved = {key: os.environ.get(key) for key in env if key.startswith("MCP_TEST_")}
    os.environ.update({key: value for key, value in env.items() if key.startswith("MCP_TEST_")})
    sys.modules.pop("tests.mcp.project", None)
    module = importlib.import_module("tests.mcp.project")
    yield module
    module.tracker.close()
    sys.modules.pop("tests.mcp.project", None)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def worker(env: dict[str, str], project: ModuleType) -> Iterator[None]:
    with running_worker(env):
        yield


def server_command(*extra: str) -> list[str]:
    tools = [arg for name in TOOLS for arg in ("--tool", name)]
    return ["-m", "celery_progress_mcp.mcp", "-A", "tests.mcp.project:app", *tools, *extra]


def stdio_client(env: dict[str, str], *extra: str, **options: Any) -> Client:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=server_command("--pickup-timeout", "20", *extra),
        env=env,
        cwd=str(ROOT),
    )
    return Client(parameters, mode="legacy", **options)


def http_client(url: str, **options: Any) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    return Client(streamable_http_client(url, http_client=http), mode="legacy", **options)


Connect = Callable[..., Client]


@pytest.fixture(params=["stdio", "http"])
def connect(request: pytest.FixtureRequest, env: dict[str, str], worker: None) -> Connect:
    """The official SDK client, to the server as a subprocess over stdio, or over HTTP."""
    if request.param == "stdio":
        return lambda **options: stdio_client(env, **options)
    url: str = request.getfixturevalue("http_url")
    return lambda **options: http_client(url, **options)


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.calls.append((progress, total, message))


async def test_progress_increases_with_messages_then_the_result(connect: Connect) -> None:
    progress = Progress()
    async with connect() as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("mcpproj.count", {"n": 10}, progress_callback=progress)
    assert names == set(TOOLS) | LOOKAROUND
    assert not result.is_error
    assert result.structured_content == {"counted": 10, "label": "count"}
    values = [value for value, _, _ in progress.calls]
    assert len(values) >= 3
    assert values == sorted(set(values))
    assert {total for _, total, _ in progress.calls} == {10.0}
    assert all(message and message.startswith("count ") for _, _, message in progress.calls)


async def test_no_token_no_progress_failures_and_bad_calls(connect: Connect) -> None:
    seen: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            seen.append(message)

    async with connect(message_handler=on_message) as client:
        quiet = await client.call_tool("mcpproj.count", {"n": 5})
        failed = await client.call_tool("mcpproj.fail", {"message": "disk on fire"})
        for name, arguments in [
            ("mcpproj.count", {"n": "many"}),
            ("mcpproj.secret", {}),
            ("mcpproj.add", {"a": 1}),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.call_tool(name, arguments)
            assert caught.value.error.code == types.INVALID_PARAMS
        plain = await client.call_tool("mcpproj.add", {"a": 2, "b": 3})
    assert quiet.structured_content == {"counted": 5, "label": "count"}
    assert not [n for n in seen if isinstance(n, types.ProgressNotification)]
    assert failed.is_error
    assert "disk on fire" in failed.content[0].text  # type: ignore[union-attr]
    assert plain.structured_content == {"result": 5}


async def test_ten_concurrent_calls_each_receive_only_their_own_progress(
    connect: Connect,
) -> None:
    progress = {i: Progress() for i in range(10)}
    results: dict[int, Any] = {}
    async with connect() as client:

        async def call(i: int) -> None:
            arguments = {"n": 5 + i, "delay": 0.03, "label": f"call{i}"}
            results[i] = await client.call_tool(
                "mcpproj.count", arguments, progress_callback=progress[i]
            )

        async with anyio.create_task_group() as group:
            for i in range(10):
                group.start_soon(call, i)
    for i in range(10):
        assert results[i].structured_content == {"counted": 5 + i, "label": f"call{i}"}
        calls = progress[i].calls
        assert calls, f"call {i} got no progress"
        assert {total for _, total, _ in calls} == {float(5 + i)}
        assert all(message and message.startswith(f"call{i} ") for _, _, message in calls)
        values = [value for value, _, _ in calls]
        assert values == sorted(set(values))


async def test_cancelling_revokes_the_task_ends_the_session_cancelled_and_gets_no_response(
    env: dict[str, str], worker: None, project: ModuleType
) -> None:
    command = [sys.executable, *server_command()]
    async with await anyio.open_process(command, cwd=ROOT, env=env) as process:
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
        await peer.send(
            {
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "mcpproj.count",
                    "arguments": {"n": 2000, "delay": 0.01, "label": "doomed"},
                    "_meta": {"progressToken": "doomed"},
                },
            }
        )
        await peer.until(lambda m: m.get("method") == "notifications/progress")
        await peer.send(
            {"method": "notifications/cancelled", "params": {"requestId": 2, "reason": "stop it"}}
        )

        def cancelled_with_the_reason() -> list[Any]:
            return [
                s
                for s in project.tracker.list_sessions(operation_id="mcpproj.count", limit=200)
                if s.status == "cancelled" and getattr(s.state, "reason", "") == "stop it"
            ]

        found = await eventually_async(
            cancelled_with_the_reason, timeout_s=10, what="the session ending cancelled"
        )
        session = found[0]

        def revoked_task() -> bool:
            revoked = project.app.control.inspect(timeout=2.0).revoked() or {}
            return any(session.id in ids for ids in revoked.values())

        # The revoke is the handler's last step: once it shows, and a later
        # request is answered, a response to the cancelled one had its chance.
        await eventually_async(revoked_task, what="the task being revoked")
        await peer.send({"id": 3, "method": "ping"})
        await peer.until(lambda m: m.get("id") == 3)
        process.terminate()
    assert session is not None, "the session did not end cancelled with the reason"
    assert not [m for m in peer.seen if m.get("id") == 2], "no response to a cancelled request"
    revoked = project.app.control.inspect(timeout=2.0).revoked() or {}
    assert any(session.id in ids for ids in revoked.values()), "the task was revoked"
    percentage = project.tracker.get_session(session.id).percentage
    # The task stops at its next update, marking its result REVOKED: after
    # that no update can come.
    result = project.app.AsyncResult(session.id)
    eventually(lambda: result.state == "REVOKED", what="the task stopping")
    assert project.tracker.get_session(session.id).percentage == percentage, "the task stopped"


async def test_with_terminate_a_cancel_stops_a_task_that_never_reports_again(
    env: dict[str, str], worker: None, project: ModuleType
) -> None:
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with stdio_client(env, "--terminate") as client:
        with anyio.CancelScope() as scope:

            async def call() -> None:
                await client.call_tool("mcpproj.sleepy", {}, progress_callback=on_progress)

            async with anyio.create_task_group() as group:
                group.start_soon(call)
                with anyio.fail_after(60):
                    await started.wait()
                scope.cancel()  # the SDK sends notifications/cancelled for the call
        sessions = project.tracker.list_sessions(operation_id="mcpproj.sleepy", limit=1)
        result = project.app.AsyncResult(sessions[0].id)
        await eventually_async(
            lambda: result.state == "REVOKED", timeout_s=10, what="the task being revoked"
        )
    assert result.state == "REVOKED", "the worker's process running the task was terminated"
    assert project.tracker.get_session(sessions[0].id).status == "cancelled"


@pytest.fixture(scope="module")
def http_url(env: dict[str, str], worker: None) -> Iterator[str]:
    with serving_http(env, TOOLS, TOKEN) as url:
        yield url


async def test_over_http_giving_up_revokes_the_task_and_a_token_is_required(
    http_url: str, project: ModuleType
) -> None:
    async with http_client(http_url) as client:
        with pytest.raises(MCPError):
            await client.call_tool(
                "mcpproj.count", {"n": 3000, "label": "abandoned"}, read_timeout_seconds=2.0
            )

        # Still connected: closing now would race the client's cancellation
        # (its own POST) against the end of the HTTP session (a DELETE), and
        # the server would end the session with its "client went away" reason.
        def abandoned_sessions() -> list[Any]:
            return [
                s
                for s in project.tracker.list_sessions(operation_id="mcpproj.count", limit=200)
                if s.status == "cancelled" and "timed out" in getattr(s.state, "reason", "")
            ]

        # Up to 30 s: a loaded machine may be slow to revoke.
        abandoned = await eventually_async(
            abandoned_sessions, timeout_s=30, what="the abandoned call's session ending cancelled"
        )
    assert abandoned, "the abandoned call's session did not end cancelled"
    revoked = project.app.control.inspect(timeout=2.0).revoked() or {}
    assert any(abandoned[0].id in ids for ids in revoked.values()), "the task was revoked"
    async with httpx2.AsyncClient() as bare:
        refused = await bare.post(http_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401


# Last: it kills a pool process, which the worker then replaces.
async def test_a_dead_worker_process_is_an_error_not_a_hang(
    env: dict[str, str], worker: None
) -> None:
    async with stdio_client(env) as client:
        with anyio.fail_after(120):
            died = await client.call_tool("mcpproj.die", {})
        after = await client.call_tool("mcpproj.add", {"a": 1, "b": 1})
    assert died.is_error
    text = died.content[0].text  # type: ignore[union-attr]
    assert "WORKER_LOST" in text or "WorkerLost" in text, text
    assert after.structured_content == {"result": 2}
