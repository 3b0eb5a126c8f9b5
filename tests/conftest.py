"""Shared fixtures. Server URLs: see tests/servers.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from celery_progress_mcp.store.base import Store
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.store.state_dir import STATE_DIR_ENV

from .databases import STORE_KINDS, ServerDatabase, copy_sqlite, sqlite_template
from .servers import server_url, summary_lines

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config: pytest.Config) -> None:
    """The run's own state directory (``CELERY_PROGRESS_STATE_DIR``), removed at its
    end: the journals and default SQLite stores of the trackers and workers the
    tests make never land in the user's ``~/.local/state``."""
    if STATE_DIR_ENV not in os.environ:
        directory = tempfile.mkdtemp(prefix="cpm-test-state-")
        os.environ[STATE_DIR_ENV] = directory
        config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The test servers: for each, the URL used, or how many tests skipped without it and why."""
    lines = summary_lines(terminalreporter.stats.get("skipped", []))
    if lines:
        terminalreporter.section("test servers")
        for line in lines:
            terminalreporter.line(line)


# -- stores: every store-parametrised test runs on memory, SQLite, PostgreSQL, MariaDB --------


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, list[ServerDatabase]]]:
    """This run's private PostgreSQL schemas and MariaDB databases, made on first use."""
    made: dict[str, list[ServerDatabase]] = {}
    yield made
    for databases in made.values():
        for database in databases:
            database.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sqlite_template_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


def server_database(
    kind: str, made: dict[str, list[ServerDatabase]], slot: int = 0
) -> ServerDatabase:
    """Private database number ``slot`` of ``kind`` ("postgresql" or "mariadb").

    Skips (or, in CI, fails) when the server's URL is not in the environment.
    """
    databases = made.setdefault(kind, [])
    while len(databases) <= slot:
        url = server_url("postgres" if kind == "postgresql" else "mysql")
        databases.append(ServerDatabase(url))
    return databases[slot]


def _empty_store_url(request: pytest.FixtureRequest, kind: str, slot: int = 0) -> str:
    """The URL of an empty store of ``kind``; ``slot`` tells apart the stores of one test."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template_path")
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return copy_sqlite(template, tmp_path, f"progress-{slot}.db")
    made: dict[str, list[ServerDatabase]] = request.getfixturevalue("server_databases")
    return server_database(kind, made, slot).fresh()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each kind of store: memory, sqlite, postgresql, mariadb."""
    kind: str = request.param
    return kind


@pytest.fixture
def store_url(request: pytest.FixtureRequest, store_kind: str) -> str:
    """The URL of an empty store of each kind: ``memory://``, SQLite, PostgreSQL, MariaDB.

    Server kinds take their URLs from the environment (tests/servers.py) and
    point at a private schema of this run, emptied for each test. Several
    ``SqlStore(store_url)`` share one database, as processes would.
    """
    return _empty_store_url(request, store_kind)


@pytest.fixture(params=[kind for kind in STORE_KINDS if kind != "memory"])
def sql_store_url(request: pytest.FixtureRequest) -> str:
    """Like ``store_url``, for the SQL kinds only."""
    return _empty_store_url(request, request.param)


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, store_kind: str, store_url: str
) -> Iterator[Callable[..., Store]]:
    """``make_store(**options)``: a store of each kind on an empty database, closed after the test.

    Like ``MemoryStore()``, every store it makes is separate from the others
    still open: the first is on ``store_url``, each further one on a database
    of its own (one that a closed store used is emptied and used again, so a
    hypothesis test that makes a store per example does not run out). Options
    go to ``SqlStore``. To share one database, open ``SqlStore(store_url)``.
    """
    made: list[Store] = []
    #: The store open on each database slot (None: free).
    slots: list[Store | None] = []

    def make(**options: Any) -> Store:
        if store_kind == "memory":
            store: Store = MemoryStore()
            made.append(store)
            return store
        slot = next((i for i, held in enumerate(slots) if held is None), len(slots))
        if slot == len(slots):
            slots.append(None)
        url = store_url if slot == 0 and not made else _empty_store_url(request, store_kind, slot)
        store = SqlStore(url, **options)
        slots[slot] = store
        close = store.close

        def close_and_free() -> None:
            close()
            if slots[slot] is store:
                slots[slot] = None

        store.close = close_and_free  # type: ignore[method-assign]
        made.append(store)
        return store

    yield make
    for store in reversed(made):
        store.close()
