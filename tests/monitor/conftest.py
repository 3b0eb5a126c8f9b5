"""Fixtures of the monitor tests: a tracker in memory, and a Celery app with a result backend
of its own (Celery's ``file://`` backend: no server; states are written with
``store_result`` as a worker writes them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from celery_progress_mcp import ProgressConfig, ProgressGranularity, ProgressTracker


@pytest.fixture
def tracker() -> Iterator[ProgressTracker]:
    config = ProgressConfig(update_interval_ms=0, granularity_level=ProgressGranularity.VERBOSE)
    with ProgressTracker(config) as tracker:
        yield tracker


@pytest.fixture
def celery_app(tmp_path: Path) -> Celery:
    return Celery("monitor-tests", broker="memory://", backend=f"file://{tmp_path}")
