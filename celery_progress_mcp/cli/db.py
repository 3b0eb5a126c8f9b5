"""``db upgrade``, ``db current``: the SQL store's schema (the Alembic migrations shipped)."""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy.exc import SQLAlchemyError

from ..core.errors import ProgressError
from ..store.sql import migrate
from .context import STORE_URL_ENV

__all__ = ["db"]


@click.group()
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
    revision_now = _run_on_database(lambda: migrate.upgrade(url, revision))
    click.echo(f"progress store schema at revision {revision_now}")


@db.command()
@click.option("--url", envvar=STORE_URL_ENV, required=True, help="Database URL.")
def current(url: str) -> None:
    """Print the revision the database is at (none if never migrated)."""
    revision_now = _run_on_database(lambda: migrate.revision_of(url))
    click.echo(revision_now or "none")


def _run_on_database(action: Callable[[], str | None]) -> str | None:
    """Run ``action``; report the package's errors and database errors as a usage failure."""
    try:
        result = action()
    except (ProgressError, SQLAlchemyError) as exc:
        raise click.ClickException(str(exc)) from exc
    return None if result is None else str(result)
