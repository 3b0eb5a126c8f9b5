"""The schema: created on first use, upgraded by ``celery-progress-mcp db upgrade``,
and the same whether the migrations or ``schema.py`` describe it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from celery_progress_mcp.cli import main
from celery_progress_mcp.store.sql import SCHEMA_REVISION, SqlStore, upgrade
from celery_progress_mcp.store.sql.migrate import head_revision, revision_of
from celery_progress_mcp.store.sql.schema import VERSION_TABLE, metadata

from ..conftest import server_database
from ..databases import ServerDatabase


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database the store has never seen."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        return
    made: dict[str, list[ServerDatabase]] = request.getfixturevalue("server_databases")
    yield server_database(request.param, made).create_extra()


def test_the_newest_migration_is_the_one_the_store_expects() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_upgrade_creates_what_schema_py_describes(empty_url: str) -> None:
    assert revision_of(empty_url) is None
    assert upgrade(empty_url) == SCHEMA_REVISION
    engine = create_engine(empty_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            differences = [
                diff for diff in compare_metadata(context, metadata) if diff[0] != "remove_table"
            ]
    finally:
        engine.dispose()
    assert differences == []


def test_a_store_creates_the_schema_on_first_use(empty_url: str) -> None:
    store = SqlStore(empty_url)
    try:
        assert store.health()["status"] == "ok"
        assert revision_of(empty_url) == SCHEMA_REVISION
    finally:
        store.close()


def test_stores_opened_together_on_an_empty_database_all_start(empty_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[SqlStore] = []
    lock = threading.Lock()

    def open_store() -> None:
        try:
            store = SqlStore(empty_url)
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            stores.append(store)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert revision_of(empty_url) == SCHEMA_REVISION


def test_upgrading_again_keeps_the_data(empty_url: str) -> None:
    from .test_store_port import create

    store = SqlStore(empty_url)
    try:
        create(store, "kept")
    finally:
        store.close()
    result = CliRunner().invoke(main, ["db", "upgrade", "--url", empty_url])
    assert result.exit_code == 0, result.output
    assert SCHEMA_REVISION in result.output
    store = SqlStore(empty_url)
    try:
        assert store.get("kept") is not None
    finally:
        store.close()


def test_a_newer_revision_is_used_as_it_is(
    empty_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'"))
    engine.dispose()
    with caplog.at_level(logging.WARNING):
        store = SqlStore(empty_url)
    try:
        assert store.health()["status"] == "ok"
    finally:
        store.close()
    assert "9999_future" in caplog.text
    assert revision_of(empty_url) == "9999_future"


def test_the_cli_reports_the_revision_and_bad_urls(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert runner.invoke(main, ["db", "current", "--url", url]).output.strip() == "none"
    assert (
        runner.invoke(main, ["db", "upgrade"], env={"CELERY_PROGRESS_STORE_URL": url}).exit_code
        == 0
    )
    assert runner.invoke(main, ["db", "current", "--url", url]).output.strip() == SCHEMA_REVISION
    refused = runner.invoke(main, ["db", "upgrade", "--url", "not a url"])
    assert refused.exit_code == 1
    assert "is not a database URL" in refused.output
    unreachable = runner.invoke(
        main, ["db", "upgrade", "--url", "postgresql://nobody@127.0.0.1:1/none"]
    )
    assert unreachable.exit_code == 1
    assert "Error:" in unreachable.output
