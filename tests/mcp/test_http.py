"""The server over streamable HTTP (uvicorn), behind a bearer token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from celery_progress_mcp import ConfigError, ProgressTracker
from celery_progress_mcp.mcp import RunOptions, ServerOptions, asgi_app, build_server

from .inproc import TASKS

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def url(demo_app: Any, tracker: ProgressTracker) -> Iterator[str]:
    options = ServerOptions(run=RunOptions(poll_interval_s=0.2))
    server = build_server(demo_app, TASKS, tracker=tracker, options=options)
    port = free_port()
    config = uvicorn.Config(asgi_app(server, token=TOKEN), port=port, log_level="warning")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/mcp"
    runner.should_exit = True
    thread.join(10)


def client_for(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


async def test_progress_then_result_over_http(url: str) -> None:
    calls: list[tuple[float, float | None, str | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        calls.append((progress, total, message))

    async with client_for(url, TOKEN) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("demo.count", {"n": 6}, progress_callback=progress)
        failed = await client.call_tool("demo.fail", {"message": "nope"})
    assert set(TASKS) <= listed
    assert result.structured_content == {"counted": 6, "label": "count"}
    values = [value for value, _, _ in calls]
    assert len(values) >= 3
    assert values == sorted(set(values))
    assert failed.is_error


async def test_giving_up_over_http_cancels_the_session(url: str, tracker: ProgressTracker) -> None:
    before = {s.id for s in tracker.list_sessions(status="cancelled", limit=1000)}
    async with client_for(url, TOKEN) as client:
        with pytest.raises(Exception, match="timed out"):
            await client.call_tool("demo.count", {"n": 500}, read_timeout_seconds=1.0)
    deadline = time.monotonic() + 10
    while not ({s.id for s in tracker.list_sessions(status="cancelled", limit=1000)} - before):
        assert time.monotonic() < deadline, "the session was not cancelled"
        time.sleep(0.05)


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
async def test_without_the_token_every_request_is_refused(url: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient() as http:
        response = await http.post(url, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_serving_beyond_loopback_needs_a_token(demo_app: Any, tracker: ProgressTracker) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker)
    with pytest.raises(ConfigError, match="without a bearer token"):
        asgi_app(server, host="0.0.0.0")
    assert asgi_app(server, host="0.0.0.0", token=TOKEN) is not None
