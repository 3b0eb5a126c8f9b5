"""Tools and resources for agents to look around: sessions, stats, cancelling.

Tools ``get_progress``, ``list_sessions``, ``cancel_session``,
``progress_stats``; resources ``progress://sessions/{id}``. They see only
the sessions of allowlisted tasks (``operation_id`` = task name), so
nothing outside the allowlist is exposed.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import SessionNotFound
from ..core.models import ProgressSession
from ..core.states import SessionStatus
from ..tracking.tracker import ProgressTracker

__all__ = [
    "ARGUMENTS",
    "LOOKAROUND_TOOLS",
    "RESOURCE_PREFIX",
    "RESOURCE_TEMPLATE",
    "Lookaround",
    "session_uri",
    "session_view",
]

#: URI template of a session resource.
RESOURCE_TEMPLATE = "progress://sessions/{id}"
#: What every session resource URI starts with.
RESOURCE_PREFIX = "progress://sessions/"
#: Most sessions ``list_sessions`` returns in one call.
MAX_LIST_LIMIT = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GetProgressArguments(_Strict):
    session_id: Annotated[str, Field(min_length=1)]


class ListSessionsArguments(_Strict):
    state: SessionStatus | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)] = 50


class CancelSessionArguments(_Strict):
    session_id: Annotated[str, Field(min_length=1)]
    reason: str


class ProgressStatsArguments(_Strict):
    pass


def _tool(
    name: str, description: str, arguments: type[BaseModel], *, read_only: bool
) -> types.Tool:
    schema = arguments.model_json_schema()
    schema.pop("title", None)
    schema.setdefault("properties", {})
    annotations = types.ToolAnnotations(
        read_only_hint=read_only, destructive_hint=not read_only, idempotent_hint=True
    )
    return types.Tool(
        name=name, description=description, input_schema=schema, annotations=annotations
    )


#: The argument models of the look-around tools, by tool name.
ARGUMENTS: dict[str, type[BaseModel]] = {
    "get_progress": GetProgressArguments,
    "list_sessions": ListSessionsArguments,
    "cancel_session": CancelSessionArguments,
    "progress_stats": ProgressStatsArguments,
}

LOOKAROUND_TOOLS: tuple[types.Tool, ...] = (
    _tool(
        "get_progress",
        "The progress of one session (a Celery task; session id = task id): "
        "state, percentage, current step, ETA, sub-operations.",
        GetProgressArguments,
        read_only=True,
    ),
    _tool(
        "list_sessions",
        "Sessions of the exposed tasks, newest first, optionally only those in one state.",
        ListSessionsArguments,
        read_only=True,
    ),
    _tool(
        "cancel_session",
        "Cancel a running session: revokes its Celery task; the session ends "
        "Cancelled with the reason.",
        CancelSessionArguments,
        read_only=False,
    ),
    _tool(
        "progress_stats",
        "Counts of sessions by state, lifetime totals, mean duration.",
        ProgressStatsArguments,
        read_only=True,
    ),
)


def session_uri(session_id: str) -> str:
    return RESOURCE_PREFIX + session_id


def session_view(session: ProgressSession) -> dict[str, Any]:
    """A session as JSON for an agent: its fields (no history) plus status and percentage."""
    view: dict[str, Any] = session.model_dump(mode="json", exclude={"history"})
    view["status"] = session.status
    view["percentage"] = session.percentage
    return view


class LookaroundError(Exception):
    """A look-around call that must be answered as a tool error."""


@dataclass
class Lookaround:
    """The look-around tools over a tracker, limited to the allowlisted task names."""

    tracker: ProgressTracker
    task_names: Collection[str]
    cancel: Any  # async (session_id, reason) -> None

    def visible(self, session: ProgressSession) -> bool:
        return session.operation_id in self.task_names

    async def session(self, session_id: str) -> ProgressSession:
        try:
            session = await anyio.to_thread.run_sync(self.tracker.get_session, session_id)
        except SessionNotFound:
            raise LookaroundError(f"no session {session_id!r}") from None
        if not self.visible(session):
            raise LookaroundError(f"no session {session_id!r}")
        return session

    async def call(self, arguments: BaseModel) -> dict[str, Any]:
        """Run the look-around tool whose checked arguments these are.

        Raises :class:`LookaroundError` for what must be answered as a tool error.
        """
        match arguments:
            case GetProgressArguments(session_id=session_id):
                return session_view(await self.session(session_id))
            case ListSessionsArguments(state=state, limit=limit):
                return await self._list(state, limit)
            case CancelSessionArguments(session_id=session_id, reason=reason):
                return await self._cancel(session_id, reason)
            case ProgressStatsArguments():
                stats = await anyio.to_thread.run_sync(self.tracker.get_stats)
                return stats.model_dump(mode="json")
        raise LookaroundError(f"unknown tool arguments {type(arguments).__name__}")

    async def _list(self, state: str | None, limit: int) -> dict[str, Any]:
        tracker = self.tracker
        names = list(self.task_names)

        def query() -> list[ProgressSession]:
            found: list[ProgressSession] = []
            for name in names:
                found.extend(tracker.list_sessions(status=state, operation_id=name, limit=limit))
            found.sort(key=lambda s: s.created_at, reverse=True)
            return found[:limit]

        sessions = await anyio.to_thread.run_sync(query)
        return {"sessions": [session_view(s) for s in sessions]}

    async def _cancel(self, session_id: str, reason: str) -> dict[str, Any]:
        session = await self.session(session_id)
        if session.status not in (
            SessionStatus.INITIALIZING,
            SessionStatus.IN_PROGRESS,
            SessionStatus.PAUSED,
        ):
            raise LookaroundError(f"session {session_id!r} has already ended ({session.status})")
        await self.cancel(session_id, reason)
        return session_view(await self.session(session_id))

    # -- resources ---------------------------------------------------------------

    async def resources(self) -> list[types.Resource]:
        listed = await self._list(None, 50)
        return [
            types.Resource(
                uri=session_uri(view["id"]),
                name=f"session {view['id']}",
                description=f"{view['operation_id']}: {view['status']}",
                mime_type="application/json",
            )
            for view in listed["sessions"]
        ]

    async def read(self, uri: str) -> str:
        if not uri.startswith(RESOURCE_PREFIX) or len(uri) == len(RESOURCE_PREFIX):
            raise LookaroundError(f"unknown resource {uri!r}")
        session = await self.session(uri[len(RESOURCE_PREFIX) :])
        return json.dumps(session_view(session))
