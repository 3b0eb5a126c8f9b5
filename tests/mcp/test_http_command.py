"""``celery-progress-mcp mcp --transport http``: its Origin, Host and session options.

The command as a subprocess on loopback, the project's app on Redis (no
worker: nothing here runs a task).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from click.testing import CliRunner

from celery_progress_mcp.cli.main import main
from celery_progress_mcp.testing import eventually

from ..servers import server_url
from .realworker import project_env, serving_http
from .test_http_guards import INITIALIZE, JSON_RPC_HEADERS, PING

pytestmark = pytest.mark.server

TOKEN = "command-token"
ALLOWED = "https://console.example"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = project_env(server_url("redis"), tmp_path_factory.mktemp("mcp-http") / "progress.db")
    options = ["--allow-origin", ALLOWED, "--allow-host", "mcp.internal"]
    limits = ["--max-sessions", "1", "--session-idle-timeout", "2"]
    with serving_http(env, ["mcpproj.count"], TOKEN, *options, *limits) as url:
        yield url


def post(url: str, body: object, **headers: str) -> httpx2.Response:
    headers = {**JSON_RPC_HEADERS, "Authorization": f"bearer {TOKEN}", **headers}
    return httpx2.post(url, json=body, headers=headers, timeout=30)


def test_origins_and_hosts_as_the_options_say(url: str) -> None:
    assert post(url, INITIALIZE, Origin="http://evil.example").status_code == 403
    assert post(url, INITIALIZE, Host="evil.example").status_code == 421
    # The session cap is one: each served initialize waits for the last to go idle.
    for headers in ({"Origin": ALLOWED}, {"Host": "mcp.internal"}):

        def served(headers: dict[str, str] = headers) -> httpx2.Response:
            response = post(url, INITIALIZE, **headers)
            assert response.status_code == 200
            return response

        opened = eventually(served, timeout_s=20, what=f"a session with {headers}")
        session = opened.headers["mcp-session-id"]
        assert post(url, PING, **{"mcp-session-id": session}).status_code == 200
        assert post(url, INITIALIZE).status_code == 503  # within the 2 s it stays open


def test_the_defaults_are_shown_and_a_bad_origin_refused() -> None:
    shown = CliRunner().invoke(main, ["mcp", "--help"])
    assert "--max-sessions" in shown.output
    assert "default: 100" in shown.output
    assert "default: 600" in shown.output
    refused = CliRunner().invoke(main, ["mcp", "--tool", "x", "--allow-origin", "console.example"])
    assert refused.exit_code == 2
    assert "not an origin" in refused.output
