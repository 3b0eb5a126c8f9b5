"""The two roots of the command tree: ``celery-progress-mcp`` and ``celery ... progress``.

Both open the same :class:`~.context.CommandContext` from ``-A`` and carry the
same session commands; the package's own command adds the schema
(``db``), the dashboard and the MCP server. Optional dependencies (rich,
uvicorn, the MCP SDK) load when a command runs, so ``--help`` works without
the extras.
"""

from __future__ import annotations

import click

from .context import celery_app_of, open_context
from .dashboard import dashboard_command
from .db import db
from .mcp import mcp_command
from .sessions import add_session_commands

__all__ = ["main", "progress"]


@click.group()
@click.option(
    "-A",
    "--app",
    "app_name",
    metavar="MODULE:APP",
    help="The Celery app whose progress sessions to work with (as celery's -A).",
)
@click.version_option(package_name="celery-progress-mcp")
@click.pass_context
def main(ctx: click.Context, app_name: str | None) -> None:
    """Granular, durable, real-time progress tracking for Celery tasks."""
    open_context(ctx, app_name)


@click.group("progress")
@click.pass_context
def progress(ctx: click.Context) -> None:
    """Progress sessions of this app's tracked tasks (celery-progress-mcp)."""
    open_context(ctx, celery_app_of(ctx.obj))


main.add_command(db)
add_session_commands(main)
main.add_command(dashboard_command)
main.add_command(mcp_command)
add_session_commands(progress)
