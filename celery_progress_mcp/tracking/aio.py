"""``AsyncProgressTracker``: the same methods as ``ProgressTracker``, awaitable.

It wraps a ``ProgressTracker``. Where the store does I/O (``Store.blocking``)
each call runs in a worker thread so the event loop never waits on a
database; with the memory store calls run inline, which is cheaper.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, Self, TypeVar

from ..bus.base import EventBus
from ..core.clock import Clock
from ..core.config import ProgressConfig
from ..core.models import (
    ProgressEventType,
    ProgressSession,
    ProgressStats,
    SubOperation,
    SubOperationUpdate,
)
from ..core.states import ProgressState
from ..store.base import Store
from .subscription import AsyncSubscription
from .tracker import CleanupResult, ProgressTracker

__all__ = ["AsyncProgressTracker"]

P = ParamSpec("P")
R = TypeVar("R")


class AsyncProgressTracker:
    def __init__(
        self,
        config: ProgressConfig | None = None,
        *,
        store: Store | None = None,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        background: bool = True,
        tracker: ProgressTracker | None = None,
    ) -> None:
        self.sync = tracker or ProgressTracker(
            config, store=store, bus=bus, clock=clock, background=background
        )
        self.config = self.sync.config

    async def _call(self, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self.sync.store.blocking:
            return await asyncio.to_thread(functools.partial(method, *args, **kwargs))
        return method(*args, **kwargs)

    async def create_session(
        self,
        operation_id: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        parent_id: str | None = None,
    ) -> str:
        return await self._call(
            self.sync.create_session,
            operation_id,
            metadata,
            session_id=session_id,
            parent_id=parent_id,
        )

    async def update_progress(
        self,
        session_id: str,
        state: ProgressState,
        sub_operation_updates: Sequence[SubOperationUpdate] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        await self._call(
            self.sync.update_progress, session_id, state, sub_operation_updates, metadata
        )

    async def add_sub_operations(
        self, session_id: str, sub_operations: Iterable[SubOperation]
    ) -> None:
        await self._call(self.sync.add_sub_operations, session_id, tuple(sub_operations))

    async def start_sub_operation(self, session_id: str, sub_operation_id: str) -> None:
        await self._call(self.sync.start_sub_operation, session_id, sub_operation_id)

    async def update_sub_operation(
        self,
        session_id: str,
        sub_operation_id: str,
        percentage: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        await self._call(
            self.sync.update_sub_operation, session_id, sub_operation_id, percentage, metadata
        )

    async def complete_sub_operation(
        self, session_id: str, sub_operation_id: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        await self._call(self.sync.complete_sub_operation, session_id, sub_operation_id, metadata)

    async def fail_sub_operation(self, session_id: str, sub_operation_id: str, error: str) -> None:
        await self._call(self.sync.fail_sub_operation, session_id, sub_operation_id, error)

    async def pause_session(self, session_id: str, reason: str = "") -> None:
        await self._call(self.sync.pause_session, session_id, reason)

    async def resume_session(self, session_id: str) -> None:
        await self._call(self.sync.resume_session, session_id)

    async def complete_session(self, session_id: str, result_summary: str | None = None) -> None:
        await self._call(self.sync.complete_session, session_id, result_summary)

    async def fail_session(
        self, session_id: str, error_message: str, error_code: str | None = None
    ) -> None:
        await self._call(self.sync.fail_session, session_id, error_message, error_code)

    async def cancel_session(self, session_id: str, reason: str = "") -> None:
        await self._call(self.sync.cancel_session, session_id, reason)

    async def heartbeat(self, session_id: str) -> None:
        await self._call(self.sync.heartbeat, session_id)

    async def get_session(self, session_id: str) -> ProgressSession:
        return await self._call(self.sync.get_session, session_id)

    async def list_sessions(
        self,
        *,
        status: str | Collection[str] | None = None,
        operation_id: str | None = None,
        parent_id: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ProgressSession]:
        return await self._call(
            self.sync.list_sessions,
            status=status,
            operation_id=operation_id,
            parent_id=parent_id,
            search=search,
            limit=limit,
            offset=offset,
        )

    async def count_sessions(
        self,
        *,
        status: str | Collection[str] | None = None,
        operation_id: str | None = None,
        parent_id: str | None = None,
        search: str | None = None,
    ) -> int:
        return await self._call(
            self.sync.count_sessions,
            status=status,
            operation_id=operation_id,
            parent_id=parent_id,
            search=search,
        )

    async def get_stats(self) -> ProgressStats:
        return await self._call(self.sync.get_stats)

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

    async def cleanup_expired(self) -> CleanupResult:
        return await self._call(self.sync.cleanup_expired)

    async def flush(self) -> None:
        await self._call(self.sync.flush)

    async def close(self) -> None:
        await self._call(self.sync.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
