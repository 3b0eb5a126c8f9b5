"""The official MCP Inspector's CLI against the server, as a user drives it.

``npx @modelcontextprotocol/inspector --cli`` (pinned: see inspector_cli.py)
lists the tools and calls one, over stdio (the Inspector starts
``celery-progress-mcp -A ... mcp --tool ...`` as its subprocess) and over
streamable HTTP (the server started apart, with a bearer token the Inspector
sends as a header), with a real prefork worker on Redis (realworker.py).
The assertions are on the JSON the Inspector prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ..servers import server_url
from .inspector_cli import inspector_answer, inspector_command, run_inspector
from .realworker import mcp_command, project_env, running_worker, serving_http

pytestmark = [pytest.mark.server, pytest.mark.slow]

TOOLS = ["mcpproj.count", "mcpproj.add"]
LOOKAROUND = {"get_progress", "list_sessions", "cancel_session", "progress_stats"}
TOKEN = "inspector-token"
#: What the project's processes need to find each other; the Inspector hands it to its server.
PROJECT_VARIABLES = ("MCP_TEST_BROKER", "MCP_TEST_BACKEND", "MCP_TEST_STORE", "MCP_TEST_QUEUE")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    inspector_command()  # a skip for want of Node comes before a worker is started
    redis_url = server_url("redis")
    return project_env(redis_url, tmp_path_factory.mktemp("mcp-inspector") / "progress.db")


@pytest.fixture(scope="module")
def worker(env: dict[str, str]) -> Iterator[None]:
    with running_worker(env, concurrency=2):
        yield


@pytest.fixture(scope="module")
def http_url(env: dict[str, str], worker: None) -> Iterator[str]:
    with serving_http(env, TOOLS, TOKEN) as url:
        yield url


@pytest.fixture(params=["stdio", "http"])
def server(request: pytest.FixtureRequest, env: dict[str, str], worker: None) -> list[str]:
    """The Inspector's arguments that name the server: its command line, or its URL and token."""
    if request.param == "stdio":
        # With -e, as the Inspector's README says to give a server its environment.
        given = [arg for name in PROJECT_VARIABLES for arg in ("-e", f"{name}={env[name]}")]
        return [*given, *mcp_command(TOOLS)]
    url: str = request.getfixturevalue("http_url")
    return [url, "--transport", "http", "--header", f"Authorization: Bearer {TOKEN}"]


def test_the_inspector_lists_each_tool_with_its_input_schema(
    server: list[str], env: dict[str, str]
) -> None:
    listed = inspector_answer(*server, "--method", "tools/list", env=env)
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert set(tools) == set(TOOLS) | LOOKAROUND
    count = tools["mcpproj.count"]
    assert count["description"].startswith("Count to ``n``")
    schema = count["inputSchema"]
    assert schema["type"] == "object"
    kinds = {name: spec["type"] for name, spec in schema["properties"].items()}
    assert kinds == {"n": "integer", "delay": "number", "label": "string"}
    assert schema["required"] == ["n"]
    assert schema["additionalProperties"] is False
    assert tools["mcpproj.add"]["inputSchema"]["required"] == ["a", "b"]


def test_the_inspector_calls_a_tool_and_gets_the_tasks_result(
    server: list[str], env: dict[str, str]
) -> None:
    call = ["--method", "tools/call", "--tool-name", "mcpproj.count"]
    called = inspector_answer(*server, *call, "--tool-arg", "n=3", "label=inspector", env=env)
    assert called["isError"] is False
    assert called["structuredContent"] == {"counted": 3, "label": "inspector"}
    assert json.loads(called["content"][0]["text"]) == {"counted": 3, "label": "inspector"}


def test_over_http_the_inspector_without_the_token_is_refused(
    http_url: str, env: dict[str, str]
) -> None:
    refused = run_inspector(http_url, "--transport", "http", "--method", "tools/list", env=env)
    assert refused.returncode != 0
    assert "unauthorized" in refused.stdout + refused.stderr
