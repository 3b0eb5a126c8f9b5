"""Private databases for store tests.

Every test run gets its own PostgreSQL schema and its own MariaDB database
(``cpm_<pid>_<random>``), migrated once and dropped at the end, so runs of
several engineers against the same servers never meet. Between tests the
rows are wiped and the counters reset, which is much faster than migrating
again. SQLite tests copy a migrated template file into their ``tmp_path``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, text, update
from sqlalchemy.engine import URL

from celery_progress_mcp.store.sql import normalize_url, upgrade
from celery_progress_mcp.store.sql.schema import (
    counters,
    events,
    sequence,
    sessions,
    snapshots,
    sub_operations,
)

__all__ = [
    "STORE_KINDS",
    "ServerDatabase",
    "copy_sqlite",
    "private_name",
    "sqlite_template",
    "wipe",
]

#: The stores every store-parametrised test runs against.
STORE_KINDS = ("memory", "sqlite", "postgresql", "mariadb")


def private_name(prefix: str = "cpm") -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def wipe(engine: Engine) -> None:
    """Empty every table and reset the counters, as a fresh migration leaves them."""
    with engine.begin() as conn:
        for table in (events, snapshots, sub_operations, sessions):
            conn.execute(delete(table))
        conn.execute(update(sequence).values(value=0))
        conn.execute(
            update(counters).values({column: 0 for column in counters.c if column.name != "id"})
        )


class ServerDatabase:
    """A private schema (PostgreSQL) or database (MariaDB) for one test run."""

    def __init__(self, base_url: str) -> None:
        self.base = normalize_url(base_url)
        self.name = private_name()
        self._admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        self.backend = self.base.get_backend_name()
        self._extras: list[str] = []
        self._create(self.name)
        self.url = self.url_for(self.name)
        self.engine = create_engine(self.url)
        upgrade(self.url)

    def url_for(self, name: str) -> URL:
        """The base URL pointed at the schema/database ``name``."""
        if self.backend == "postgresql":
            return self.base.update_query_dict({"options": f"-csearch_path={name}"})
        return self.base.set(database=name)

    def _create(self, name: str) -> None:
        with self._admin.connect() as conn:
            if self.backend == "postgresql":
                conn.execute(text(f'CREATE SCHEMA "{name}"'))
            else:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))

    def create_extra(self) -> str:
        """Another empty schema/database (not migrated), dropped with this one."""
        name = private_name()
        self._create(name)
        self._extras.append(name)
        return self.url_for(name).render_as_string(hide_password=False)

    def __enter__(self) -> ServerDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.engine.dispose()
        with self._admin.connect() as conn:
            for name in [self.name, *self._extras]:
                with suppress(Exception):
                    if self.backend == "postgresql":
                        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
                    else:
                        conn.execute(text(f"DROP DATABASE `{name}`"))
        self._admin.dispose()

    def fresh(self) -> str:
        """The URL, with every table empty."""
        wipe(self.engine)
        return self.url.render_as_string(hide_password=False)


def sqlite_template(directory: Path) -> Iterator[Path]:
    """A migrated, empty SQLite database to copy from."""
    path = directory / "template.db"
    upgrade(f"sqlite:///{path}")
    yield path


def copy_sqlite(template: Path, directory: Path, name: str = "progress.db") -> str:
    """A fresh copy of the template in ``directory`` (replacing an older copy)."""
    target = directory / name
    for stale in directory.glob(name + "*"):
        stale.unlink()
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"
