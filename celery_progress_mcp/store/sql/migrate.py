"""Creating and upgrading the schema with the Alembic migrations shipped in the package.

``ensure_schema`` runs on a store's first use: a database at the current
revision costs one catalog query and one SELECT; an empty or older one is
upgraded, under a lock so that processes starting together migrate once.
``upgrade`` is what ``celery-progress-mcp db upgrade`` runs.
"""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, select, text
from sqlalchemy.engine import URL

from .connect import BEGIN_OPTION, engine_from_url
from .schema import VERSION_TABLE

__all__ = [
    "SCHEMA_REVISION",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "revision_of",
    "upgrade",
]

logger = logging.getLogger(__name__)

#: The newest migration; ``ensure_schema`` upgrades a database that is behind it.
SCHEMA_REVISION = "0001_initial"
#: Where Alembic finds env.py and versions/, as a package resource.
SCRIPT_LOCATION = "celery_progress_mcp.store:migrations"
#: Key of the PostgreSQL advisory lock (and MySQL named lock) held while migrating.
_LOCK_KEY = 0x43504D5F4D4947  # "CPM_MIG"
_MYSQL_LOCK_NAME = "celery_progress_mcp.migrate"
_MYSQL_LOCK_TIMEOUT_S = 120


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    row = connection.execute(select(text("version_num")).select_from(text(VERSION_TABLE))).first()
    return None if row is None else str(row[0])


def revision_of(url: str | URL | Engine) -> str | None:
    """The revision the database is at; None if the store was never created there."""
    owned = not isinstance(url, Engine)
    engine = engine_from_url(url) if not isinstance(url, Engine) else url
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        if owned:
            engine.dispose()


def ensure_schema(engine: Engine) -> None:
    """Bring the database to :data:`SCHEMA_REVISION` unless it is there already."""
    with engine.connect() as connection:
        current = current_revision(connection)
    if current == SCHEMA_REVISION:
        return
    if current is not None and not _is_known(current):
        # Migrated by a newer release: its schema is a superset we can use.
        logger.warning(
            "progress store schema is at %s, which this release does not know; using it as is",
            current,
        )
        return
    _upgrade_locked(engine, "head")


def _is_known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(url: str | URL | Engine, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; return the revision the database is at."""
    owned = not isinstance(url, Engine)
    engine = engine_from_url(url) if not isinstance(url, Engine) else url
    try:
        _upgrade_locked(engine, revision)
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        if owned:
            engine.dispose()


def _upgrade_locked(engine: Engine, revision: str) -> None:
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "sqlite":
            # BEGIN IMMEDIATE: the migration is the only writer until it commits.
            connection.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        with connection.begin():
            if dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            elif dialect in ("mysql", "mariadb"):
                connection.execute(
                    text("SELECT GET_LOCK(:name, :timeout)"),
                    {"name": _MYSQL_LOCK_NAME, "timeout": _MYSQL_LOCK_TIMEOUT_S},
                )
            before = current_revision(connection)
            command.upgrade(alembic_config(connection), revision)
            after = current_revision(connection)
        if dialect in ("mysql", "mariadb"):
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MYSQL_LOCK_NAME})
            connection.commit()
    if before != after:
        logger.info("progress store schema upgraded from %s to %s", before, after)
