"""Fixtures for tracker tests: trackers over a store, and a sync/async facade.

``store_factory`` is the single place where tracker tests choose their store:
parametrise it (memory, sqlite, postgresql, mariadb) and every tracker test
here runs against each store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from celery_progress_mcp import ProgressConfig, ProgressTracker, Store
from celery_progress_mcp.core.clock import Clock
from celery_progress_mcp.testing import FakeClock

from .api import Api, ApiFactory

StoreFactory = Callable[[], Store]


class TrackerFactory(Protocol):
    def __call__(
        self, config: ProgressConfig | None = None, *, clock: Clock | None = None, **fields: Any
    ) -> ProgressTracker: ...


@pytest.fixture
def store_factory(make_store: StoreFactory) -> StoreFactory:
    """Builds the store each tracker runs on: ``make_store`` is parametrised
    over memory, SQLite, PostgreSQL and MariaDB (tests/conftest.py)."""
    return make_store


@pytest.fixture
def make_tracker(store_factory: StoreFactory) -> Iterator[TrackerFactory]:
    """``make_tracker(config=None, *, clock=None, **config_fields)``.

    The clock defaults to a ``FakeClock`` (no threads, nothing sleeps); pass
    ``clock=SystemClock()`` for the real one. Config fields given as keywords
    override those of ``config``. Every tracker and store is closed afterwards.
    """
    made: list[tuple[ProgressTracker, Store]] = []

    def make(
        config: ProgressConfig | None = None, *, clock: Clock | None = None, **fields: Any
    ) -> ProgressTracker:
        if fields:
            base = config.model_dump() if config is not None else {}
            config = ProgressConfig(**{**base, **fields})
        store = store_factory()
        tracker = ProgressTracker(
            config, store=store, clock=clock if clock is not None else FakeClock()
        )
        made.append((tracker, store))
        return tracker

    yield make
    for tracker, store in reversed(made):
        tracker.close()
        store.close()


@pytest.fixture(params=["sync", "async"])
def make_api(request: pytest.FixtureRequest, make_tracker: TrackerFactory) -> ApiFactory:
    """``make_api(config=None, *, clock=None, **config_fields)``: an ``Api`` of each kind."""
    kind: str = request.param

    def make(config: ProgressConfig | None = None, **kwargs: Any) -> Api:
        return Api(kind, make_tracker(config, **kwargs))

    return make
