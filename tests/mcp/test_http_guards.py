"""Over real HTTP (uvicorn on loopback): the token's scheme, Origin and Host, the session cap.

A browser page on a foreign site (DNS rebinding) is refused whatever the
credentials; the SDK client, which sends no Origin, is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from celery_progress_mcp import ConfigError, ProgressTracker
from celery_progress_mcp.mcp import asgi_app, build_server

from ..web.server import serving
from .inproc import TASKS
from .waiting import eventually_async

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"
ALLOWED = "https://app.example"

#: What an SDK client sends with a request.
JSON_RPC_HEADERS = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def mcp_url(demo_app: Any, tracker: ProgressTracker, **options: Any) -> Iterator[str]:
    server = build_server(demo_app, TASKS, tracker=tracker)
    with serving(asgi_app(server, **options)) as base:
        yield f"{base}/mcp"


@pytest.fixture(scope="module")
def url(demo_app: Any, tracker: ProgressTracker) -> Iterator[str]:
    with mcp_url(demo_app, tracker, token=TOKEN, allow_origins=[ALLOWED]) as url:
        yield url


def sdk_client(url: str, authorization: str = f"Bearer {TOKEN}") -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": authorization}, timeout=30)
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


async def post(url: str, body: dict[str, Any], **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, json=body, headers={**JSON_RPC_HEADERS, **headers})


def assert_json_rpc_error(response: httpx2.Response) -> None:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] is None
    assert body["error"]["message"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
async def test_the_scheme_is_compared_without_case(url: str, scheme: str) -> None:
    async with sdk_client(url, f"{scheme} {TOKEN}") as client:
        result = await client.call_tool("demo.count", {"n": 2})
    assert result.structured_content == {"counted": 2, "label": "count"}


async def test_a_refused_token_gets_a_json_rpc_error(url: str) -> None:
    response = await post(url, INITIALIZE, Authorization=f"bearer {TOKEN[:-1]}")
    assert response.status_code == 401
    assert_json_rpc_error(response)


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "http://evil.example:{port}", "http://127.0.0.1:1", "null"],
)
@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", None])
async def test_a_foreign_origin_is_forbidden_with_or_without_the_token(
    url: str, origin: str, authorization: str | None
) -> None:
    headers = {"Origin": origin.format(port=urlsplit(url).port)}
    if authorization:
        headers["Authorization"] = authorization
    response = await post(url, INITIALIZE, **headers)
    assert response.status_code == 403
    assert_json_rpc_error(response)


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:{port}", "http://localhost:{port}", ALLOWED, f"{ALLOWED}:443"]
)
async def test_this_servers_own_origin_and_an_allowed_one_are_served(url: str, origin: str) -> None:
    headers = {"Origin": origin.format(port=urlsplit(url).port), "Authorization": f"Bearer {TOKEN}"}
    response = await post(url, INITIALIZE, **headers)
    assert response.status_code == 200
    assert response.headers["mcp-session-id"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "10.1.2.3:{port}"])
async def test_a_foreign_host_is_refused_with_the_token(url: str, host: str) -> None:
    headers = {"Host": host.format(port=urlsplit(url).port), "Authorization": f"Bearer {TOKEN}"}
    response = await post(url, INITIALIZE, **headers)
    assert response.status_code == 421
    assert_json_rpc_error(response)


@pytest.mark.parametrize("host", ["localhost:{port}", "app.example"])
async def test_loopback_names_and_allowed_hosts_are_served(url: str, host: str) -> None:
    headers = {"Host": host.format(port=urlsplit(url).port), "Authorization": f"Bearer {TOKEN}"}
    response = await post(url, INITIALIZE, **headers)
    assert response.status_code == 200


async def test_a_named_host_is_served_when_allowed(demo_app: Any, tracker: ProgressTracker) -> None:
    with mcp_url(demo_app, tracker, allow_hosts=["MCP.internal:9000"]) as url:
        served = await post(url, INITIALIZE, Host="mcp.internal:8000")
        refused = await post(url, INITIALIZE, Host="other.internal:8000")
    assert served.status_code == 200
    assert refused.status_code == 421


def test_an_allowed_origin_must_be_an_origin(demo_app: Any, tracker: ProgressTracker) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker)
    for bad in ["app.example", "ftp://app.example", "https://app.example/path"]:
        with pytest.raises(ConfigError, match="not an origin"):
            asgi_app(server, allow_origins=[bad])


async def test_past_the_session_cap_a_new_session_is_refused(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    with mcp_url(demo_app, tracker, max_sessions=2) as url:
        async with sdk_client(url) as first, sdk_client(url) as second:
            await first.list_tools()
            await second.list_tools()
            refused = await post(url, INITIALIZE)
            with pytest.raises(ExceptionGroup) as raised:
                async with sdk_client(url) as third:
                    await third.list_tools()
        # Their clients closed them: there is room again.
        async with sdk_client(url) as again:
            result = await again.call_tool("demo.count", {"n": 1})
    assert raised.group_contains(MCPError, match="Too many open sessions", depth=2)
    assert refused.status_code == 503
    assert_json_rpc_error(refused)
    assert result.structured_content == {"counted": 1, "label": "count"}


async def test_an_idle_session_is_closed_and_its_id_then_unknown(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    with mcp_url(demo_app, tracker, max_sessions=1, session_idle_timeout_s=0.5) as url:
        opened = await post(url, INITIALIZE)
        session = {"mcp-session-id": opened.headers["mcp-session-id"]}
        assert (await post(url, PING, **session)).status_code == 200
        refused = await post(url, INITIALIZE)

        async def reopened() -> httpx2.Response:
            # Refused while the idle session holds the only place; never a request on it.
            response = await post(url, INITIALIZE)
            assert response.status_code == 200
            return response

        await eventually_async(reopened, timeout_s=20, what="the idle session closing")
        gone = await post(url, PING, **session)
    assert refused.status_code == 503
    assert gone.status_code == 404
    assert_json_rpc_error(gone)
