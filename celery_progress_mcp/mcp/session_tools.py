"""The session tools and resources: agents look at sessions, stats, and cancel.

Tools ``get_progress``, ``list_sessions``, ``cancel_session``,
``progress_stats``; resources ``progress://sessions/{id}``. They see only
the sessions of allowlisted tasks (``operation_id`` = task name), so
nothing outside the allowlist is exposed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import ProgressError, SessionNotFound
from ..core.models import ProgressSession
from ..core.states import ACTIVE_STATUSES, SessionStatus
from .toolspec import InvalidToolArguments, validation_problems
from .visible_sessions import VisibleSessions

__all__ = [
    "ARGUMENTS",
    "RESOURCE_NOT_FOUND",
    "RESOURCE_PREFIX",
    "RESOURCE_TEMPLATE",
    "SESSION_RESOURCE_TEMPLATE",
    "SESSION_TOOLS",
    "CancelSession",
    "SessionToolError",
    "SessionTools",
    "resource_not_found",
    "session_id_of",
    "session_uri",
    "session_view",
]

#: URI template of a session resource.
RESOURCE_TEMPLATE = "progress://sessions/{id}"
#: What every session resource URI starts with.
RESOURCE_PREFIX = "progress://sessions/"
#: JSON-RPC error code for an unknown resource (2025-06-18 server/resources).
RESOURCE_NOT_FOUND = -32002
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


#: The argument models of the session tools, by tool name.
ARGUMENTS: dict[str, type[BaseModel]] = {
    "get_progress": GetProgressArguments,
    "list_sessions": ListSessionsArguments,
    "cancel_session": CancelSessionArguments,
    "progress_stats": ProgressStatsArguments,
}

#: The session tools, as listed.
SESSION_TOOLS: tuple[types.Tool, ...] = (
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


#: Sessions listed by ``resources/list``.
LISTED_RESOURCES = 50
#: A session resource, for ``resources/templates/list``.
SESSION_RESOURCE_TEMPLATE = types.ResourceTemplate(
    uri_template=RESOURCE_TEMPLATE,
    name="progress session",
    description="A progress session (session id = Celery task id), as JSON.",
    mime_type="application/json",
)

#: ``(session_id, reason)``: cancels a session and revokes its task.
CancelSession = Callable[[str, str], Awaitable[None]]


def session_uri(session_id: str) -> str:
    return RESOURCE_PREFIX + session_id


def session_id_of(uri: str) -> str | None:
    """The session id a ``progress://sessions/{id}`` URI names; None for any other URI."""
    if not uri.startswith(RESOURCE_PREFIX) or len(uri) == len(RESOURCE_PREFIX):
        return None
    return uri[len(RESOURCE_PREFIX) :]


def resource_not_found(uri: str, message: str) -> MCPError:
    """The JSON-RPC error answering a read of, or a subscription to, an unknown resource."""
    return MCPError(RESOURCE_NOT_FOUND, message, data={"uri": uri})


def session_view(session: ProgressSession) -> dict[str, Any]:
    """A session as JSON for an agent: its fields (no history) plus status and percentage."""
    view: dict[str, Any] = session.model_dump(mode="json", exclude={"history"})
    view["status"] = session.status
    view["percentage"] = session.percentage
    return view


class SessionToolError(Exception):
    """A session tool call that must be answered as a tool error."""


class SessionTools:
    """The session tools and resources over the sessions an agent may see."""

    def __init__(self, sessions: VisibleSessions, cancel: CancelSession) -> None:
        self.sessions = sessions
        self._cancel_session = cancel

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Answer a ``tools/call`` of the session tool ``name``.

        Arguments that do not fit are a JSON-RPC ``INVALID_PARAMS`` error;
        everything else, failures included, is a tool result.
        """
        model = ARGUMENTS[name]
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as exc:
            refused = InvalidToolArguments(name, validation_problems(exc))
            raise MCPError(types.INVALID_PARAMS, str(refused)) from None
        try:
            value = await self.run(parsed)
        except (SessionToolError, ProgressError) as exc:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(value))],
            structured_content=value,
        )

    async def run(self, arguments: BaseModel) -> dict[str, Any]:
        """Run the session tool whose checked arguments these are.

        Raises :class:`SessionToolError` for what must be answered as a tool error.
        """
        match arguments:
            case GetProgressArguments(session_id=session_id):
                return session_view(await self.session(session_id))
            case ListSessionsArguments(state=state, limit=limit):
                return await self._list(state, limit)
            case CancelSessionArguments(session_id=session_id, reason=reason):
                return await self._cancel(session_id, reason)
            case ProgressStatsArguments():
                stats = await self.sessions.tracker.get_stats()
                return stats.model_dump(mode="json")
        raise SessionToolError(f"unknown tool arguments {type(arguments).__name__}")

    async def session(self, session_id: str) -> ProgressSession:
        try:
            return await self.sessions.get(session_id)
        except SessionNotFound:
            raise SessionToolError(f"no session {session_id!r}") from None

    async def _list(self, state: str | None, limit: int) -> dict[str, Any]:
        sessions = await self.sessions.newest(status=state, limit=limit)
        return {"sessions": [session_view(s) for s in sessions]}

    async def _cancel(self, session_id: str, reason: str) -> dict[str, Any]:
        session = await self.session(session_id)
        if session.status not in ACTIVE_STATUSES:
            raise SessionToolError(f"session {session_id!r} has already ended ({session.status})")
        await self._cancel_session(session_id, reason)
        return session_view(await self.session(session_id))

    # -- resources ---------------------------------------------------------------

    async def resources(self) -> list[types.Resource]:
        listed = await self._list(None, LISTED_RESOURCES)
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
        """The session ``uri`` names, as JSON; an unknown one is a JSON-RPC error."""
        session_id = session_id_of(uri)
        if session_id is None:
            raise resource_not_found(uri, f"unknown resource {uri!r}")
        try:
            session = await self.session(session_id)
        except SessionToolError as exc:
            raise resource_not_found(uri, str(exc)) from None
        return json.dumps(session_view(session))
