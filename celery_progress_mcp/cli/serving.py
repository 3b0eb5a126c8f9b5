"""What both server commands (``dashboard``, ``mcp``) check before they bind.

A server reachable from other machines must ask for credentials: without
them, only a loopback address is served.
"""

from __future__ import annotations

import click

from ..core.hosts import is_loopback

__all__ = ["check_token", "refuse_open_bind"]


def check_token(token: str | None) -> None:
    """An empty ``--token`` (an unset variable expanded) would let anyone in: refuse it.

    Spaces alone are as empty. The dashboard asks more of its token (16
    characters at least, no whitespace: ``web.security.token_problem``); the
    MCP server could follow the same minimum once its callers' tokens do.
    """
    if token is not None and not token.strip():
        raise click.BadParameter("the token must not be empty or whitespace", param_hint="--token")


def refuse_open_bind(host: str, *, authenticated: bool, without: str, remedy: str) -> None:
    """A usage error for a non-loopback ``host`` served without credentials."""
    if not is_loopback(host) and not authenticated:
        raise click.UsageError(
            f"refusing to serve on {host} without {without}: {remedy}, or bind 127.0.0.1"
        )
