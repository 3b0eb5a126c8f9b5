"""``AsyncProgressTracker``: the same methods as ``ProgressTracker``, awaitable.

It wraps a ``ProgressTracker`` (or a tracker that composes one, such as the
Celery integration's). Each method is derived from the sync one by
:func:`awaitable`, so signatures and documentation are written once. Where
the store does I/O (``Store.blocking``) a call runs in a worker thread so the
event loop never waits on a database; with the memory store calls run
inline, which is cheaper.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, Unpack, overload

from ..core.config import ProgressConfig
from ..core.errors import ProgressError
from ..core.models import ProgressEventType
from .subscription import AsyncSubscription
from .tracker import ProgressTracker, TrackerOptions

__all__ = ["AsyncProgressTracker", "AsyncTrackerBase", "awaitable"]

P = ParamSpec("P")
R = TypeVar("R")


class AsyncTrackerBase:
    """What :func:`awaitable` methods need: the wrapped tracker, and whether
    its calls may block (then they run in a worker thread)."""

    sync: Any

    def __init__(self, sync: Any, *, blocking: bool) -> None:
        self.sync = sync
        self._blocking = blocking

    async def run(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``function`` off the event loop where the store may block."""
        if self._blocking:
            return await asyncio.to_thread(functools.partial(function, *args, **kwargs))
        return function(*args, **kwargs)


class awaitable(Generic[P, R]):
    """The awaitable twin of a sync tracker method, called on ``self.sync``.

    ``get_session = awaitable(ProgressTracker.get_session)`` gives an
    ``async def get_session(session_id)`` with the same parameters and
    docstring, calling the wrapped tracker's own (possibly overridden) method.
    """

    def __init__(self, method: Callable[Concatenate[Any, P], R]) -> None:
        self._name = method.__name__
        self.__doc__ = method.__doc__
        name = self._name

        async def unbound(tracker: AsyncTrackerBase, /, *args: P.args, **kwargs: P.kwargs) -> R:
            bound: Callable[P, R] = getattr(tracker.sync, name)
            return await tracker.run(bound, *args, **kwargs)

        functools.update_wrapper(unbound, method)

        #: What the class shows (``inspect`` sees a coroutine function with
        #: the sync method's signature).
        self._unbound: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]] = unbound

    @overload
    def __get__(
        self, instance: None, owner: type
    ) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]: ...

    @overload
    def __get__(
        self, instance: AsyncTrackerBase, owner: type
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    def __get__(
        self, instance: AsyncTrackerBase | None, owner: type
    ) -> (
        Callable[Concatenate[Any, P], Coroutine[Any, Any, R]] | Callable[P, Coroutine[Any, Any, R]]
    ):
        if instance is None:
            return self._unbound
        return functools.partial(self._unbound, instance)


class AsyncProgressTracker(AsyncTrackerBase):
    """A ``ProgressTracker`` whose methods are awaitable; ``sync`` is the tracker."""

    sync: ProgressTracker

    def __init__(
        self,
        config: ProgressConfig | None = None,
        *,
        tracker: ProgressTracker | None = None,
        **options: Unpack[TrackerOptions],
    ) -> None:
        """Wraps ``tracker``, or a ``ProgressTracker(config, **options)`` of its own."""
        sync = tracker or ProgressTracker(config, **options)
        super().__init__(sync, blocking=sync.store.blocking)
        self.config = sync.config

    create_session = awaitable(ProgressTracker.create_session)
    update_progress = awaitable(ProgressTracker.update_progress)
    add_sub_operations = awaitable(ProgressTracker.add_sub_operations)
    start_sub_operation = awaitable(ProgressTracker.start_sub_operation)
    update_sub_operation = awaitable(ProgressTracker.update_sub_operation)
    complete_sub_operation = awaitable(ProgressTracker.complete_sub_operation)
    fail_sub_operation = awaitable(ProgressTracker.fail_sub_operation)
    pause_session = awaitable(ProgressTracker.pause_session)
    resume_session = awaitable(ProgressTracker.resume_session)
    complete_session = awaitable(ProgressTracker.complete_session)
    fail_session = awaitable(ProgressTracker.fail_session)
    cancel_session = awaitable(ProgressTracker.cancel_session)
    heartbeat = awaitable(ProgressTracker.heartbeat)
    apply_mutation = awaitable(ProgressTracker.apply_mutation)
    get_session = awaitable(ProgressTracker.get_session)
    list_sessions = awaitable(ProgressTracker.list_sessions)
    count_sessions = awaitable(ProgressTracker.count_sessions)
    get_stats = awaitable(ProgressTracker.get_stats)
    health = awaitable(ProgressTracker.health)
    cleanup_expired = awaitable(ProgressTracker.cleanup_expired)
    flush = awaitable(ProgressTracker.flush)
    close = awaitable(ProgressTracker.close)

    def add_refusal_listener(
        self, listener: Callable[[str, ProgressError], None]
    ) -> Callable[[], None]:
        """As ``ProgressTracker.add_refusal_listener`` (a plain call: adding one never waits)."""
        return self.sync.add_refusal_listener(listener)

    def subscribe_to_events(
        self,
        *,
        session_id: str | None = None,
        event_types: Collection[ProgressEventType | str] | None = None,
        since: int | None = None,
    ) -> AsyncSubscription:
        """An async iterator of events; call from a running event loop."""
        return AsyncSubscription(
            self.sync.subscribe_to_events(
                session_id=session_id, event_types=event_types, since=since
            )
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
