"""``CELERY_PROGRESS`` settings, the store on the project's database, and ``migrate``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from celery_progress_mcp import ConfigError
from celery_progress_mcp.django.conf import app_settings, dashboard_permission, database_url
from celery_progress_mcp.store.sql.connect import normalize_url
from celery_progress_mcp.store.sql.migrate import head_revision

from ..servers import server_url
from .conftest import ROOT, site_env

#: Guard against a command that hangs, in seconds.
COMMAND_GUARD_S = 120


def test_sqlite_becomes_the_same_file(tmp_path: Path) -> None:
    entry = {"ENGINE": "django.db.backends.sqlite3", "NAME": tmp_path / "db.sqlite3"}
    assert database_url(entry) == f"sqlite:///{tmp_path / 'db.sqlite3'}"


def test_postgresql_keeps_server_credentials_and_options() -> None:
    entry = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app",
        "PASSWORD": "p@ss/word:1",
        "HOST": "db.internal",
        "PORT": "6432",
        "OPTIONS": {"sslmode": "require", "options": "-c search_path=progress"},
    }
    url = make_url(database_url(entry))
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        "p@ss/word:1",
        "db.internal",
        6432,
        "shop",
    )
    assert dict(url.query) == {"sslmode": "require", "options": "-c search_path=progress"}


def test_a_unix_socket_and_mysql() -> None:
    socket_entry = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "HOST": "/run/pg"}
    assert dict(make_url(database_url(socket_entry)).query) == {"host": "/run/pg"}
    mysql = make_url(
        database_url({"ENGINE": "django.db.backends.mysql", "NAME": "shop", "USER": "root"})
    )
    assert mysql.drivername == "mysql+pymysql"
    assert dict(mysql.query) == {"charset": "utf8mb4"}


@pytest.mark.parametrize(
    "entry",
    [
        {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:memorydb?mode=memory&cache=shared"},
        {"ENGINE": "django.db.backends.oracle", "NAME": "xe"},
    ],
)
def test_a_database_no_worker_could_share_asks_for_a_store_url(entry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="store_url"):
        database_url(entry)


def test_the_dict_single_settings_and_bad_keys(settings: Any) -> None:
    settings.CELERY_PROGRESS = {"UPDATE_INTERVAL_MS": 250, "permission": "auth.view_user"}
    settings.CELERY_PROGRESS_SESSION_TIMEOUT_SECONDS = 60
    settings.CELERY_PROGRESS_UPDATE_INTERVAL_MS = 999  # the dict wins
    found = app_settings()
    assert found.config.update_interval_ms == 250
    assert found.config.session_timeout_seconds == 60
    assert found.config.store_url == f"sqlite:///{Path(settings.DATABASES['default']['NAME'])}"
    assert dashboard_permission() == "auth.view_user"
    settings.CELERY_PROGRESS = {"update_intervall_ms": 250}
    with pytest.raises(ConfigError, match="update_intervall_ms"):
        app_settings()
    settings.CELERY_PROGRESS = {"update_interval_ms": -1}
    with pytest.raises(ConfigError):
        app_settings()


# -- the store derived from DATABASES, and migrate, on real databases --------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An empty database of each kind, as one ``settings.DATABASES`` entry."""
    if request.param == "sqlite":
        yield {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "site.sqlite3")}
        return
    base = normalize_url(server_url("postgres"))
    name = f"cpm_django_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": base.username or "",
            "PASSWORD": base.password or "",
            "HOST": base.host or "",
            "PORT": str(base.port or ""),
        }
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _manage(database: dict[str, Any], *arguments: str) -> str:
    env = {**os.environ, **site_env(), "DJANGO_TEST_DATABASE": json.dumps(database)}
    done = subprocess.run(
        [sys.executable, "-m", "django", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_GUARD_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_migrate_makes_the_store_in_the_projects_database(database: dict[str, Any]) -> None:
    first = _manage(database, "migrate", "--no-input")
    assert f"Progress store at revision {head_revision()}" in first
    engine = create_engine(database_url(database))
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"auth_user", "django_migrations", "progress_sessions", "progress_events"} <= tables
        # Again on a migrated database: nothing to apply, the store already current.
        again = _manage(database, "migrate", "--no-input")
        assert "No migrations to apply" in again
        assert f"Progress store at revision {head_revision()}" in again
        # The site's tracker writes there, with no store_url of its own.
        made = _manage(
            database,
            "shell",
            "-c",
            "from celery_progress_mcp.django.runtime import runtime; "
            "t = runtime().tracker; print(t.create_session('from_django')); t.flush()",
        ).splitlines()[-1]  # after what the shell says it imported
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT operation_id FROM progress_sessions WHERE id = :id"), {"id": made}
            ).one()
        assert row.operation_id == "from_django"
    finally:
        engine.dispose()
