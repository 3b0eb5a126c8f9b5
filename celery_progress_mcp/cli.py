"""The ``celery-progress-mcp`` command.

Each concern adds its commands with a small ``register_*`` function called
at the bottom of this module, so the command tree reads in one place and a
concern's code stays in its own function. Nothing in the package imports
this module; commands import what they need when they run, so ``--help``
stays fast.
"""

from __future__ import annotations

from collections.abc import Callable

import click

__all__ = [
    "STORE_URL_ENV",
    "main",
    "register_dashboard",
    "register_db",
    "register_mcp",
    "register_sessions",
]

#: The environment variable ``ProgressConfig.from_env`` reads the store URL from.
STORE_URL_ENV = "CELERY_PROGRESS_STORE_URL"


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
    from .celery.commands import CommandContext

    context = CommandContext.from_name(app_name) if app_name else CommandContext()
    ctx.obj = context
    ctx.call_on_close(context.close)


def register_db(root: click.Group) -> None:
    """``db upgrade``, ``db current``: the SQL store's schema."""

    @root.group()
    def db() -> None:
        """The SQL store's schema (Alembic migrations shipped with the package)."""

    @db.command()
    @click.option(
        "--url",
        envvar=STORE_URL_ENV,
        required=True,
        help=f"Database URL, e.g. sqlite:///progress.db or postgresql://... [env: {STORE_URL_ENV}]",
    )
    @click.option("--revision", default="head", show_default=True, help="Target revision.")
    def upgrade(url: str, revision: str) -> None:
        """Create or upgrade the store's tables; existing data is kept."""
        from .store.sql import migrate

        revision_now = _run_on_database(lambda: migrate.upgrade(url, revision))
        click.echo(f"progress store schema at revision {revision_now}")

    @db.command()
    @click.option("--url", envvar=STORE_URL_ENV, required=True, help="Database URL.")
    def current(url: str) -> None:
        """Print the revision the database is at (none if never migrated)."""
        from .store.sql import migrate

        revision_now = _run_on_database(lambda: migrate.revision_of(url))
        click.echo(revision_now or "none")


def _run_on_database(action: Callable[[], str | None]) -> str | None:
    """Run ``action``; report the package's errors and database errors as a usage failure."""
    from sqlalchemy.exc import SQLAlchemyError

    from .core.errors import ProgressError

    try:
        result = action()
    except (ProgressError, SQLAlchemyError) as exc:
        raise click.ClickException(str(exc)) from exc
    return None if result is None else str(result)


def register_sessions(root: click.Group) -> None:
    """``sessions list|show|watch|cancel``, ``stats``, ``cleanup`` (the Celery integration)."""
    from .celery.commands import register

    register(root)


def register_dashboard(root: click.Group) -> None:
    """``dashboard``: the web dashboard, JSON API, SSE and /metrics (the ``web`` extra)."""
    from .web.command import dashboard_command

    root.add_command(dashboard_command)


def register_mcp(root: click.Group) -> None:
    """``mcp``: allowlisted Celery tasks as MCP tools (the ``mcp`` extra)."""
    from .mcp.command import mcp_command

    root.add_command(mcp_command)


register_db(main)
register_sessions(main)
register_dashboard(main)
register_mcp(main)
