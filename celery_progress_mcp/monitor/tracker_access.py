"""The dashboard's one way to the tracker: awaitable, with store errors counted.

Every call goes through an ``AsyncProgressTracker`` wrapping the tracker
given: a store with ``blocking = True`` (the SQL store) waits on a
database, so its calls run in a worker thread; the memory store is called
inline, which is cheaper. Reads the tracker has no method for (the event
log) take the same way, through its ``run``. Store errors are counted for
``/metrics`` and re-raised.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import ProgressError, StoreUnavailable
from ..core.models import ProgressEvent, ProgressSession, ProgressStats
from ..core.states import ACTIVE_STATUSES
from ..tracking.aio import AsyncProgressTracker
from ..tracking.subscription import Subscription
from ..tracking.tracker import ProgressTracker

if TYPE_CHECKING:
    from .params import ListFilters

__all__ = ["EVENT_PAGE_ROWS", "MAX_ACTIVE_SCAN_ROWS", "ActionHook", "SessionPage", "TrackerAccess"]

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
    """The tracker as the dashboard uses it; ``tracker`` is the awaitable one."""

    def __init__(
        self,
        tracker: ProgressTracker,
        *,
        cancel: ActionHook | None = None,
        on_store_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.tracker = AsyncProgressTracker(tracker=tracker)
        self.store = tracker.store
        self.bus = tracker.bus
        self._cancel = cancel
        self._on_store_error = on_store_error

    def hear_other_processes(self) -> None:
        """Start the bus's consumer where it has one (idempotent; blocking: it may read the store).

        A bus that crosses processes (the Celery integration's) may start
        consuming only when asked; the dashboard wants every process's
        events for ``/metrics`` as well as for its live pages. Called after
        start-up, never at import, so a server that forks starts it in
        each worker.
        """
        self.bus.start_consuming()

    @contextlib.contextmanager
    def _store_errors_counted(self) -> Iterator[None]:
        try:
            yield
        except StoreUnavailable as exc:
            self._count(exc)
            raise
        except ProgressError:
            raise  # the request's fault (unknown session, refused move), not the store's
        except Exception as exc:
            self._count(exc)
            raise

    def _count(self, exc: BaseException) -> None:
        if self._on_store_error is not None:
            self._on_store_error(exc)

    # -- reading ---------------------------------------------------------------

    async def subscribe(self) -> Subscription:
        """A subscription to every event (subscribing reads where the log ends)."""
        with self._store_errors_counted():
            return await self.tracker.run(self.tracker.sync.subscribe_to_events)

    async def page(self, filters: ListFilters) -> SessionPage:
        """One page of the sessions ``filters`` select, and how many they select in all."""
        statuses, operation_id, search = filters.statuses, filters.operation_id, filters.search
        with self._store_errors_counted():
            sessions = await self.tracker.list_sessions(
                status=statuses,
                operation_id=operation_id,
                search=search,
                limit=filters.limit,
                offset=filters.offset,
            )
            total = await self.tracker.count_sessions(
                status=statuses, operation_id=operation_id, search=search
            )
        return SessionPage(sessions, total, filters.limit, filters.offset)

    async def session(self, session_id: str) -> ProgressSession:
        with self._store_errors_counted():
            return await self.tracker.get_session(session_id)

    async def stats(self) -> ProgressStats:
        with self._store_errors_counted():
            return await self.tracker.get_stats()

    async def events(
        self, session_id: str | None, *, since: int, limit: int
    ) -> list[ProgressEvent]:
        with self._store_errors_counted():
            return await self.tracker.run(
                self.store.events_since, since, session_id=session_id, limit=limit
            )

    async def recent_events(self, session_id: str, count: int) -> tuple[list[ProgressEvent], int]:
        """The session's newest ``count`` events, oldest first, and how many it has in all."""
        with self._store_errors_counted():
            return await self.tracker.run(self._recent_events, session_id, count)

    def _recent_events(self, session_id: str, count: int) -> tuple[list[ProgressEvent], int]:
        kept: deque[ProgressEvent] = deque(maxlen=count)
        total = 0
        cursor = 0
        while True:
            page = self.store.events_since(cursor, session_id=session_id, limit=EVENT_PAGE_ROWS)
            kept.extend(page)
            total += len(page)
            if len(page) < EVENT_PAGE_ROWS:
                return list(kept), total
            cursor = page[-1].seq

    async def last_seq(self) -> int:
        with self._store_errors_counted():
            return await self.tracker.run(self.store.last_seq)

    def scrape(self) -> tuple[ProgressStats, list[ProgressSession]]:
        """The stats and the active sessions (blocking; for the metrics collector's thread)."""
        stats = self.tracker.sync.get_stats()
        active = self.tracker.sync.list_sessions(status=ACTIVE_STATUSES, limit=MAX_ACTIVE_SCAN_ROWS)
        return stats, active

    # -- acting ------------------------------------------------------------------

    async def cancel(self, session_id: str, reason: str) -> ProgressSession:
        with self._store_errors_counted():
            if self._cancel is None:
                await self.tracker.cancel_session(session_id, reason)
            else:
                await self.tracker.run(self._cancel, session_id, reason)
        return await self.session(session_id)

    async def pause(self, session_id: str, reason: str) -> ProgressSession:
        with self._store_errors_counted():
            await self.tracker.pause_session(session_id, reason)
        return await self.session(session_id)

    async def resume(self, session_id: str) -> ProgressSession:
        with self._store_errors_counted():
            await self.tracker.resume_session(session_id)
        return await self.session(session_id)
