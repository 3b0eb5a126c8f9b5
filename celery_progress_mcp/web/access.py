"""The dashboard's one way to the tracker: every call off the event loop when it blocks.

A store with ``blocking = True`` (the SQL store) waits on a database, so its
calls run in a worker thread; the memory store is called inline, which is
cheaper. Store errors are counted for ``/metrics`` and re-raised.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import anyio.to_thread

from ..core.errors import ProgressError, StoreUnavailable
from ..core.models import ProgressEvent, ProgressSession, ProgressStats
from ..core.states import ACTIVE_STATUSES
from ..store.base import SessionQuery
from ..tracking.tracker import ProgressTracker, session_query

__all__ = ["ActionHook", "SessionPage", "TrackerAccess"]

P = ParamSpec("P")
R = TypeVar("R")

#: Events read per store call when looking for a session's newest.
EVENT_PAGE_ROWS = 1000
#: Rows scanned at most to count active sessions per operation for ``/metrics``.
MAX_ACTIVE_SCAN_ROWS = 10_000

#: ``(session_id, reason) -> None``: how the dashboard cancels a session. The
#: default is ``tracker.cancel_session``; the Celery integration passes one
#: that also revokes the task.
ActionHook = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[ProgressSession]
    total: int
    limit: int
    offset: int


class TrackerAccess:
    def __init__(
        self,
        tracker: ProgressTracker,
        *,
        cancel: ActionHook | None = None,
        on_store_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.tracker = tracker
        self._cancel = cancel or tracker.cancel_session
        self._on_store_error = on_store_error

    def hear_other_processes(self) -> None:
        """Start the bus's consumer where it has one (idempotent).

        A bus that crosses processes (the Celery integration's) may start
        consuming only when asked; the dashboard wants every process's
        events for ``/metrics`` as well as for its live pages. Called after
        start-up, never at import, so a server that forks starts it in
        each worker.
        """
        self.tracker.bus.start_consuming()

    async def call(self, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        bound = functools.partial(method, *args, **kwargs)
        try:
            if self.tracker.store.blocking:
                return await anyio.to_thread.run_sync(bound)
            return bound()
        except StoreUnavailable as exc:
            if self._on_store_error is not None:
                self._on_store_error(exc)
            raise
        except ProgressError:
            raise  # the request's fault (unknown session, refused move), not the store's
        except Exception as exc:
            if self._on_store_error is not None:
                self._on_store_error(exc)
            raise

    # -- reading ---------------------------------------------------------------

    async def page(
        self,
        *,
        statuses: Collection[str] | None,
        operation_id: str | None,
        search: str | None,
        limit: int,
        offset: int,
    ) -> SessionPage:
        query = session_query(statuses, operation_id, None, search, limit, offset)
        return await self.call(self._page, query)

    def _page(self, query: SessionQuery) -> SessionPage:
        store = self.tracker.store
        return SessionPage(
            sessions=store.list_sessions(query),
            total=store.count_sessions(query),
            limit=query.limit,
            offset=query.offset,
        )

    async def session(self, session_id: str) -> ProgressSession:
        return await self.call(self.tracker.get_session, session_id)

    async def stats(self) -> ProgressStats:
        return await self.call(self.tracker.get_stats)

    async def events(
        self, session_id: str | None, *, since: int, limit: int
    ) -> list[ProgressEvent]:
        return await self.call(
            self.tracker.store.events_since, since, session_id=session_id, limit=limit
        )

    async def recent_events(self, session_id: str, count: int) -> tuple[list[ProgressEvent], int]:
        """The session's newest ``count`` events, oldest first, and how many it has in all."""
        return await self.call(self._recent_events, session_id, count)

    def _recent_events(self, session_id: str, count: int) -> tuple[list[ProgressEvent], int]:
        kept: deque[ProgressEvent] = deque(maxlen=count)
        total = 0
        cursor = 0
        while True:
            page = self.tracker.store.events_since(
                cursor, session_id=session_id, limit=EVENT_PAGE_ROWS
            )
            kept.extend(page)
            total += len(page)
            if len(page) < EVENT_PAGE_ROWS:
                return list(kept), total
            cursor = page[-1].seq

    async def last_seq(self) -> int:
        return await self.call(self.tracker.store.last_seq)

    def active_sessions(self) -> list[ProgressSession]:
        """Active sessions (blocking; for the metrics collector's own thread)."""
        query = SessionQuery(statuses=ACTIVE_STATUSES, limit=MAX_ACTIVE_SCAN_ROWS)
        return self.tracker.store.list_sessions(query)

    # -- acting ------------------------------------------------------------------

    async def cancel(self, session_id: str, reason: str) -> ProgressSession:
        await self.call(self._cancel, session_id, reason)
        return await self.session(session_id)

    async def pause(self, session_id: str, reason: str) -> ProgressSession:
        await self.call(self.tracker.pause_session, session_id, reason)
        return await self.session(session_id)

    async def resume(self, session_id: str) -> ProgressSession:
        await self.call(self.tracker.resume_session, session_id)
        return await self.session(session_id)
