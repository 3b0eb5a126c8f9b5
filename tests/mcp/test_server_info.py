"""``serverInfo`` as the official SDK client reads it: the package's name and version."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest
from mcp import Client

import celery_progress_mcp
from celery_progress_mcp import ProgressTracker
from celery_progress_mcp.mcp import ServerOptions, build_server

from .inproc import TASKS

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_server_info_carries_the_package_version(
    demo_app: Any, tracker: ProgressTracker
) -> None:
    async with Client(build_server(demo_app, TASKS, tracker=tracker), mode="legacy") as client:
        info = client.server_info
    assert info is not None
    assert info.name == "celery-progress-mcp"
    assert info.version == metadata.version("celery-progress-mcp")
    assert info.version == celery_progress_mcp.__version__


async def test_a_version_given_is_the_one_reported(demo_app: Any, tracker: ProgressTracker) -> None:
    server = build_server(demo_app, TASKS, tracker=tracker, options=ServerOptions(version="9.9"))
    async with Client(server, mode="legacy") as client:
        assert client.server_info is not None
        assert client.server_info.version == "9.9"


def test_the_installed_distributions_version_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "version", lambda name: "7.7")
    assert ServerOptions().version == "7.7"


def test_without_installed_metadata_the_packages_own_version_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert ServerOptions().version == celery_progress_mcp.__version__
