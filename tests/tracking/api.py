"""One scenario, both trackers: an awaitable facade over either tracker."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from celery_progress_mcp import (
    AsyncProgressTracker,
    AsyncSubscription,
    ProgressEvent,
    ProgressTracker,
    Subscription,
)

__all__ = ["Api", "ApiFactory", "EventReader", "run"]


class EventReader(Protocol):
    async def next(self, timeout: float = 5.0) -> ProgressEvent | None: ...

    def close(self) -> None: ...


class _SyncReader:
    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    async def next(self, timeout: float = 5.0) -> ProgressEvent | None:
        return self.subscription.get(timeout=timeout)

    def close(self) -> None:
        self.subscription.close()


class _AsyncReader:
    def __init__(self, subscription: AsyncSubscription) -> None:
        self.subscription = subscription

    async def next(self, timeout: float = 5.0) -> ProgressEvent | None:
        return await self.subscription.get(timeout=timeout)

    def close(self) -> None:
        self.subscription.close()


class Api:
    """The tracker's methods, awaitable whichever tracker is underneath.

    ``await api.update_progress(...)`` calls ``ProgressTracker.update_progress``
    directly for the sync kind and awaits ``AsyncProgressTracker.update_progress``
    for the async kind. ``api.tracker`` is the sync tracker, for inspection.
    """

    def __init__(self, kind: str, tracker: ProgressTracker) -> None:
        self.kind = kind
        self.tracker = tracker
        self.aio = AsyncProgressTracker(tracker=tracker) if kind == "async" else None

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if self.aio is not None:
            method: Callable[..., Awaitable[Any]] = getattr(self.aio, name)
            return method
        sync_method = getattr(self.tracker, name)

        @functools.wraps(sync_method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return sync_method(*args, **kwargs)

        return call

    def subscribe(self, **kwargs: Any) -> EventReader:
        """A reader of events; for the async kind, call inside a running loop."""
        if self.aio is not None:
            return _AsyncReader(self.aio.subscribe_to_events(**kwargs))
        return _SyncReader(self.tracker.subscribe_to_events(**kwargs))


ApiFactory = Callable[..., Api]


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a scenario to its end on a fresh event loop."""
    return asyncio.run(coroutine)
