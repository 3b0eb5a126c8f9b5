"""Alembic's entry point for the store's migrations.

Run through :func:`celery_progress_mcp.store.sql.migrate.upgrade`, which
passes an open connection in ``config.attributes["connection"]``; with the
``alembic`` command line, ``sqlalchemy.url`` is read from the ini file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from celery_progress_mcp.store.sql.connect import engine_from_url
from celery_progress_mcp.store.sql.schema import VERSION_TABLE, metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    config = context.config
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run celery-progress-mcp db upgrade --url URL")
    engine = engine_from_url(url)
    try:
        with engine.connect() as connection:
            _migrate(connection)
            connection.commit()
    finally:
        engine.dispose()


_run()
