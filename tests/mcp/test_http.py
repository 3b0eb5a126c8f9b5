"""The server over streamable HTTP (uvicorn), behind a bearer token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from celery_progress_mcp import ConfigError, ProgressTracker
from celery_progress_mcp.mcp import RunOptions, ServerOptions, asgi_app, build_server

from ..web.server import serving
from .inproc import TASKS
from .waiting import eventually_async

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def url(demo_app: Any, tracker: ProgressTracker) -> Iterator[str]:
    options = ServerOptions(run=RunOptions(poll_interval_s=0.2))
    server = build_server(demo_app, TASKS, tracker=tracker, options=options)
    with serving(asgi_app(server, token=TOKEN)) as base:
        yield f"{base}/mcp"


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

    def newly_cancelled() -> set[str]:
        return {s.id for s in tracker.list_sessions(status="cancelled", limit=1000)} - before

    await eventually_async(newly_cancelled, timeout_s=10, what="the session being cancelled")


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


async def test_mounted_in_an_existing_app(demo_app: Any, tracker: ProgressTracker) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker)
    mcp_app = asgi_app(server, token=TOKEN)

    @contextlib.asynccontextmanager
    async def lifespan(parent: Starlette) -> AsyncIterator[None]:
        async with mcp_app.router.lifespan_context(mcp_app):
            yield

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("the rest of the site")

    parent = Starlette(routes=[Route("/", home), Mount("/agents", app=mcp_app)], lifespan=lifespan)
    with serving(parent) as base:
        async with client_for(f"{base}/agents/mcp", TOKEN) as client:
            result = await client.call_tool("demo.count", {"n": 2})
        async with httpx2.AsyncClient() as http:
            page = await http.get(f"{base}/")
    assert result.structured_content == {"counted": 2, "label": "count"}
    assert page.text == "the rest of the site"
