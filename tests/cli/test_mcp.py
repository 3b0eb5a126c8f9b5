"""``celery-progress-mcp mcp``: options and the loopback rule."""

from __future__ import annotations

from click.testing import CliRunner

from celery_progress_mcp.cli import main


def test_the_mcp_command_is_registered() -> None:
    result = CliRunner().invoke(main, ["mcp", "--help"])
    assert result.exit_code == 0
    for option in ("--tool", "--transport", "--host", "--port", "--token", "--terminate"):
        assert option in result.output


def test_http_beyond_loopback_without_a_token_is_refused() -> None:
    arguments = ["mcp", "--tool", "x", "--transport", "http", "--host", "0.0.0.0"]
    result = CliRunner().invoke(main, arguments, env={"CELERY_PROGRESS_MCP_TOKEN": ""})
    assert result.exit_code != 0
    assert "without a bearer token" in result.output


def test_an_app_is_required() -> None:
    result = CliRunner().invoke(main, ["mcp", "--tool", "x"])
    assert result.exit_code != 0
    assert "-A MODULE:APP" in result.output
