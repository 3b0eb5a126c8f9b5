"""The sessions an agent may see: those of the allowlisted tasks.

A session's ``operation_id`` is its Celery task's name, so the tools, the
resources and MCP Tasks show a session only when its task is exposed;
anything else is answered as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Collection

from ..core.errors import SessionNotFound
from ..core.models import ProgressSession
from ..tracking.aio import AsyncProgressTracker

__all__ = ["VisibleSessions"]


class VisibleSessions:
    """Reads of the tracker limited to the sessions of ``task_names``."""

    def __init__(self, tracker: AsyncProgressTracker, task_names: Collection[str]) -> None:
        self.tracker = tracker
        self.task_names = frozenset(task_names)

    def visible(self, session: ProgressSession) -> bool:
        return session.operation_id in self.task_names

    async def get(self, session_id: str) -> ProgressSession:
        """The session; :class:`SessionNotFound` also for one of a task not exposed."""
        session = await self.tracker.get_session(session_id)
        if not self.visible(session):
            raise SessionNotFound(session_id)
        return session

    async def newest(
        self, *, status: str | None = None, limit: int, offset: int = 0
    ) -> list[ProgressSession]:
        """Up to ``limit`` sessions of the exposed tasks, newest first, after ``offset``."""
        found: list[ProgressSession] = []
        for name in sorted(self.task_names):
            found.extend(
                await self.tracker.list_sessions(
                    status=status, operation_id=name, limit=offset + limit
                )
            )
        found.sort(key=lambda session: (session.created_at, session.id), reverse=True)
        return found[offset : offset + limit]
