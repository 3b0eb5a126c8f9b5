from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from celery_progress_mcp import ProgressTracker

from . import inproc


@pytest.fixture(scope="module")
def tracker() -> Iterator[ProgressTracker]:
    with inproc.tracker() as tracker:
        yield tracker


@pytest.fixture(scope="module")
def demo_app(tracker: ProgressTracker) -> Iterator[Any]:
    app = inproc.make_app(tracker)
    with inproc.running_worker(app):
        yield app
