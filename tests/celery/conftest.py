"""Fixtures of the Celery integration tests: a real prefork worker per configuration.

``project`` runs every test that asks for it on three configurations, each
a real worker (prefork, 2 processes) started once for the whole run:

* ``filesystem-sqlite``: the embedded default (``filesystem://`` broker,
  SQLite result backend and store), coalescing window 100 ms;
* ``redis-postgresql``: Redis broker and result backend, PostgreSQL store
  (a private schema), window 0 (every update written and published);
* ``rabbitmq-sqlite``: RabbitMQ broker, SQLite result backend and store,
  window 0.

Server URLs come from the environment (tests/servers.py). Queues, task
names and the store are private to the run, so runs on shared servers never
meet.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_progress_mcp.celery import uninstall
from tests.celery.project import Project, ProjectConfig, make_project
from tests.celery.workers import Worker, start_worker
from tests.databases import ServerDatabase
from tests.servers import server_url

CONFIGURATIONS = ("filesystem-sqlite", "redis-postgresql", "rabbitmq-sqlite")


def new_prefix(tag: str) -> str:
    return f"cpmt{tag}{secrets.token_hex(3)}"


def project_config(
    kind: str,
    directory: Path,
    *,
    postgres: ServerDatabase | None = None,
    window_ms: int | None = None,
    heartbeat_timeout_s: float = 60.0,
    visibility_timeout_s: float = 3600.0,
) -> ProjectConfig:
    """A configuration of ``kind`` ("<broker>-<store>") with its files in ``directory``."""
    broker_kind, store_kind = kind.split("-")
    prefix = new_prefix(broker_kind[:2])
    backend = f"db+sqlite:///{directory / 'results.sqlite3'}"
    filesystem_dir = ""
    if broker_kind == "filesystem":
        broker = "filesystem://"
        filesystem_dir = str(directory / "broker")
    elif broker_kind == "redis":
        broker = server_url("redis")
        backend = broker
    elif broker_kind == "rabbitmq":
        broker = server_url("rabbitmq")
    else:
        broker = broker_kind
    if store_kind == "postgresql":
        assert postgres is not None
        store = postgres.url.render_as_string(hide_password=False)
    else:
        store = f"sqlite:///{directory / 'progress.sqlite3'}"
    if window_ms is None:
        window_ms = 100 if broker_kind == "filesystem" else 0
    return ProjectConfig(
        prefix=prefix,
        broker=broker,
        backend=backend,
        store=store,
        window_ms=window_ms,
        heartbeat_timeout_s=heartbeat_timeout_s,
        filesystem_dir=filesystem_dir,
        visibility_timeout_s=visibility_timeout_s,
    )


def close_project(project: Project) -> None:
    """Drop the project's queue from the broker and close its tracker."""
    try:
        with project.app.connection_for_write() as connection:
            channel = connection.default_channel
            for queue in (project.config.prefix, f"{project.config.prefix}.nobody"):
                try:
                    channel.queue_delete(queue)
                except Exception:
                    channel = connection.channel()
    except Exception:
        pass
    uninstall(project.app)


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[ServerDatabase]:
    """This run's private PostgreSQL schema, migrated: the PostgreSQL configurations' store."""
    database = ServerDatabase(server_url("postgres"))
    yield database
    database.__exit__(None, None, None)


@pytest.fixture(scope="session", params=CONFIGURATIONS)
def configured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Project, Worker]]:
    kind: str = request.param
    directory = tmp_path_factory.mktemp(kind)
    postgres = request.getfixturevalue("postgres_schema") if "postgresql" in kind else None
    config = project_config(kind, directory, postgres=postgres)
    project = make_project(config)
    worker = start_worker(project, directory)
    yield project, worker
    worker.stop()
    close_project(project)


@pytest.fixture
def project(configured: tuple[Project, Worker]) -> Project:
    """The test project's app and tracker, with a running worker (see the module's docstring)."""
    project, worker = configured
    if worker.process.poll() is not None:
        pytest.fail(f"the worker died:\n{worker.log_tail()}")
    return project


@pytest.fixture
def worker(configured: tuple[Project, Worker]) -> Worker:
    return configured[1]


@pytest.fixture
def projects() -> Iterator[list[tuple[Project, list[Worker]]]]:
    """Projects made by a test with workers of its own: killed and closed afterwards."""
    made: list[tuple[Project, list[Worker]]] = []
    yield made
    for project, workers in made:
        for worker in workers:
            if worker.process.poll() is None:
                worker.kill()
        close_project(project)
