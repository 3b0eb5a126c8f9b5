"""The MCP server: allowlisted Celery tasks as tools, with progress and cancellation.

:class:`ProgressMcpServer` is the official SDK's ``MCPServer``, made to
serve Celery tasks through its public surface:

- its public ``list_tools`` / ``call_tool`` and ``list_resources`` /
  ``list_resource_templates`` / ``read_resource`` methods are overridden, so
  tools carry the task's schemas and ``execution.taskSupport``, and unknown
  tools and invalid arguments get JSON-RPC errors (``MCPError`` is what
  ``MCPServer`` passes through as an error; anything else becomes ``isError``);
- MCP Tasks' ``tasks/*`` methods are an SDK ``Extension`` (see mcptasks.py);
- its public middleware answers what the SDK has no handler seam for: a
  task-augmented ``tools/call`` (its ``CreateTaskResult`` is not a
  ``tools/call`` result), 2025-era ``resources/subscribe`` /
  ``resources/unsubscribe`` (``MCPServer`` serves only 2026-07-28's
  ``subscriptions/listen``), the ``tasks`` and ``resources.subscribe``
  capabilities, and the reason a ``notifications/cancelled`` carries.

Resource updates reach 2025-era subscribers as
``notifications/resources/updated`` and 2026-07-28 listeners through the
server's subscription bus.

A ``tools/call`` sends the task with a fresh id (= session id), follows the
session and, when the request carries ``_meta.progressToken``, sends
``notifications/progress`` on the way. ``notifications/cancelled`` (or the
client going away) cancels the request's handler, which cancels the session
with the reason and revokes the task; the SDK then sends no response.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from pydantic import AnyUrl, ValidationError

from ..core.errors import ConfigError, ProgressError
from ..core.states import TERMINAL_STATUSES, SessionStatus
from ..tracking.subscription import AsyncSubscription
from ..tracking.tracker import ProgressTracker
from . import mcptasks
from .answers import SESSION_META_KEY, checked_arguments, notify_quietly, tool_result
from .lookaround import (
    ARGUMENTS,
    LOOKAROUND_TOOLS,
    RESOURCE_PREFIX,
    RESOURCE_TEMPLATE,
    Lookaround,
    LookaroundError,
    session_uri,
)
from .notices import ProgressNotice
from .runner import Canceller, DispatchFailed, Outcome, RunOptions, TaskRunner
from .toolspec import TaskTool, tool_from_task

__all__ = ["SESSION_META_KEY", "ProgressMcpServer", "ServerOptions", "build_server"]

logger = logging.getLogger(__name__)

#: How long a cancelled handler waits for the ``notifications/cancelled``
#: that carries its reason (the SDK cancels the handler before handing the
#: notification on).
REASON_WAIT_S = 0.5
#: JSON-RPC error code for an unknown resource (2025-06-18 server/resources).
RESOURCE_NOT_FOUND = -32002
#: Longest a cancelled handler spends recording the cancellation and revoking.
CANCEL_BUDGET_S = 15.0
#: How long a cancellation's reason is kept for a handler that has not asked yet.
REASON_KEEP_S = 30.0
#: Reason recorded when a request ends without a ``notifications/cancelled``.
CLIENT_GONE_REASON = "the MCP client went away or gave up on the request"
#: Key in ``Connection.state`` of the cleanups registered on a connection.
_CLEANUP_STATE_KEY = "celery-progress-mcp/cleanups"
#: The protocol versions that have ``resources/subscribe`` (2026-07-28 has
#: ``subscriptions/listen`` instead).
_SUBSCRIBE_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
#: The protocol version MCP Tasks belong to.
_TASKS_VERSION = "2025-11-25"


@dataclass(frozen=True)
class ServerOptions:
    name: str = "celery-progress-mcp"
    version: str = ""
    instructions: str | None = None
    run: RunOptions = field(default_factory=RunOptions)
    #: Expose get_progress, list_sessions, cancel_session, progress_stats.
    lookaround_tools: bool = True


class _ListenBus(InMemorySubscriptionBus):
    """The SDK's in-process bus, counting its ``subscriptions/listen`` streams."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners = 0

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self.listeners += 1
        done = False

        def once() -> None:
            nonlocal done
            if not done:
                done = True
                self.listeners -= 1
                unsubscribe()

        return once


class ProgressMcpServer(MCPServer[dict[str, Any]]):
    """The SDK's ``MCPServer`` for a Celery app's allowlisted tasks. See :func:`build_server`.

    Serve it as any ``MCPServer``: ``run_stdio_async()``, or over HTTP with
    :func:`celery_progress_mcp.mcp.asgi.asgi_app` (which adds the bearer token).
    """

    def __init__(
        self,
        app: Any,
        tools: Sequence[str | TaskTool],
        tracker: ProgressTracker,
        *,
        options: ServerOptions | None = None,
        canceller: Canceller | None = None,
    ) -> None:
        self.app = app
        self.tracker = tracker
        self.options = options or ServerOptions()
        self.tools = _resolve_tools(app, tools)
        self.runner = TaskRunner(app, tracker, options=self.options.run, canceller=canceller)
        self.lookaround = Lookaround(
            tracker, {tool.task_name for tool in self.tools.values()}, self.runner.cancel
        )
        self.tasks = mcptasks.McpTasks(self.tools, self.runner, tracker)
        self._reasons: dict[tuple[int, str], str] = {}
        self._reason_events: dict[str, list[anyio.Event]] = {}
        self._reason_times: deque[tuple[float, str, int]] = deque()
        #: session id -> (connection key -> the SDK session to notify through)
        self._subscribers: dict[str, dict[int, ServerSession]] = {}
        self._listen_bus = _ListenBus()
        super().__init__(
            self.options.name,
            version=self.options.version,
            instructions=self.options.instructions,
            lifespan=self._lifespan,
            extensions=[self.tasks],
            subscriptions=self._listen_bus,
            middleware=[self._middleware],
        )

    # -- lifespan: background work shared by every connection ---------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: MCPServer[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as group:
            self.tasks.task_group = group
            await group.start(self._watch_resources)  # subscribed before serving
            try:
                yield {}
            finally:
                self.tasks.task_group = None
                group.cancel_scope.cancel()

    # -- tools -------------------------------------------------------------------

    async def list_tools(self) -> list[types.Tool]:
        listed = [
            types.Tool(
                name=tool.name,
                description=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
                execution=types.ToolExecution(task_support="optional"),
            )
            for tool in self.tools.values()
        ]
        if self.options.lookaround_tools:
            listed.extend(LOOKAROUND_TOOLS)
        return listed

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Context[dict[str, Any], Any] | None = None,
    ) -> types.CallToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return await self._call_lookaround(name, arguments)
        args, kwargs = checked_arguments(tool, arguments)
        ctx = _request_of(context)
        task_id = str(uuid.uuid4())
        wants_progress = ctx is not None and progress_token_from_params(ctx.params) is not None
        subscription = await self.runner.subscribe(task_id)
        try:
            sent_at_s = time.monotonic()
            await self.runner.send(tool, args, kwargs, task_id)

            async def report(notice: ProgressNotice) -> None:
                assert ctx is not None
                await ctx.session.report_progress(notice.progress, notice.total, notice.message)

            outcome = await self.runner.follow(
                task_id, subscription, report if wants_progress else None, sent_at_s=sent_at_s
            )
        except DispatchFailed as exc:
            outcome = Outcome(SessionStatus.FAILED, error=str(exc), error_code="NOT_SENT")
            await self._fail_unsent(task_id, str(exc))
        except anyio.get_cancelled_exc_class():
            # Shielded, so the cancellation that ends this handler does not
            # also stop it from revoking; bounded, so a dead broker cannot hold it.
            with anyio.move_on_after(CANCEL_BUDGET_S, shield=True):
                reason = await self._reason_for(ctx) if ctx is not None else CLIENT_GONE_REASON
                await self.runner.cancel(task_id, reason)
            raise
        finally:
            subscription.close()
        return tool_result(tool, outcome, task_id)

    async def _fail_unsent(self, task_id: str, message: str) -> None:
        """A session made at dispatch for a task that never left must not wait for ever."""

        def fail() -> None:
            with contextlib.suppress(ProgressError):
                self.tracker.fail_session(task_id, message, "NOT_SENT")

        await anyio.to_thread.run_sync(fail)

    async def _call_lookaround(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        model = ARGUMENTS.get(name)
        if model is None or not self.options.lookaround_tools:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise MCPError(
                types.INVALID_PARAMS, f"invalid arguments for tool {name!r}: {problems}"
            ) from None
        try:
            value = await self.lookaround.call(parsed)
        except (LookaroundError, ProgressError) as exc:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(value))],
            structured_content=value,
        )

    # -- cancellation --------------------------------------------------------------

    def _note_cancelled(self, ctx: ServerRequestContext[Any, Any]) -> None:
        try:
            params = types.CancelledNotificationParams.model_validate(
                ctx.params or {}, by_name=False
            )
        except ValidationError:
            return
        if params.request_id is None:
            return
        request_id = str(params.request_id)
        reason = params.reason or "cancelled by the MCP client"
        self._forget_old_reasons()
        self._reasons[(_connection_key(ctx.session), request_id)] = reason
        # On 2026-07-28 connections every message has a connection object of
        # its own, so the request id alone also carries the reason.
        self._reasons[(0, request_id)] = reason
        self._reason_times.append((time.monotonic(), request_id, _connection_key(ctx.session)))
        for event in self._reason_events.pop(request_id, []):
            event.set()

    def _forget_old_reasons(self) -> None:
        """Reasons for requests that had ended already are never asked for: drop them."""
        horizon_s = time.monotonic() - REASON_KEEP_S
        while self._reason_times and self._reason_times[0][0] < horizon_s:
            _, request_id, connection = self._reason_times.popleft()
            self._reasons.pop((connection, request_id), None)
            self._reasons.pop((0, request_id), None)

    async def _reason_for(self, ctx: ServerRequestContext[Any, Any]) -> str:
        """The reason the client gave for cancelling this request, if it gave one."""
        request_id = str(ctx.request_id)
        key = (_connection_key(ctx.session), request_id)
        if key not in self._reasons and (0, request_id) not in self._reasons:
            event = anyio.Event()
            self._reason_events.setdefault(request_id, []).append(event)
            with anyio.move_on_after(REASON_WAIT_S):
                await event.wait()
            waiting = self._reason_events.get(request_id, [])
            if event in waiting:
                waiting.remove(event)
                if not waiting:
                    del self._reason_events[request_id]
        loose = self._reasons.pop((0, request_id), CLIENT_GONE_REASON)
        return self._reasons.pop(key, loose)

    # -- resources --------------------------------------------------------------------

    async def list_resources(self) -> list[types.Resource]:
        return await self.lookaround.resources()

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        template = types.ResourceTemplate(
            uri_template=RESOURCE_TEMPLATE,
            name="progress session",
            description="A progress session (session id = Celery task id), as JSON.",
            mime_type="application/json",
        )
        return [template]

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[dict[str, Any], Any] | None = None
    ) -> Iterable[ReadResourceContents]:
        try:
            text = await self.lookaround.read(str(uri))
        except LookaroundError as exc:
            raise MCPError(RESOURCE_NOT_FOUND, str(exc), data={"uri": str(uri)}) from None
        return [ReadResourceContents(content=text, mime_type="application/json")]

    def _subscribe(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
        session_id = _session_id_of(_subscribed_uri(ctx))
        connection = _connection_key(ctx.session)
        self._subscribers.setdefault(session_id, {})[connection] = ctx.session
        _on_connection_close(ctx.session, self._forget_connection, connection)
        return {}

    def _unsubscribe(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
        session_id = _session_id_of(_subscribed_uri(ctx))
        subscribers = self._subscribers.get(session_id, {})
        subscribers.pop(_connection_key(ctx.session), None)
        if not subscribers:
            self._subscribers.pop(session_id, None)
        return {}

    async def _forget_connection(self, connection: int) -> None:
        for session_id in list(self._subscribers):
            subscribers = self._subscribers[session_id]
            subscribers.pop(connection, None)
            if not subscribers:
                del self._subscribers[session_id]

    async def _watch_resources(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Tell subscribers and listeners a session changed, at most once per window."""
        raw = await anyio.to_thread.run_sync(lambda: self.tracker.subscribe_to_events())
        subscription = AsyncSubscription(raw)
        task_status.started()
        interval_s = self.tracker.config.update_interval_s
        dirty: set[str] = set()
        last_flush_s = float("-inf")
        try:
            while True:
                event = await subscription.get(interval_s if dirty else None)
                if event is not None and (
                    event.session_id in self._subscribers or self._listen_bus.listeners
                ):
                    dirty.add(event.session_id)
                    if event.data.get("status") in TERMINAL_STATUSES:
                        last_flush_s = float("-inf")  # an ending is never held back
                now_s = time.monotonic()
                if dirty and now_s - last_flush_s >= interval_s:
                    last_flush_s = now_s
                    pending, dirty = dirty, set()
                    for session_id in pending:
                        await self._tell_updated(session_id)
        finally:
            subscription.close()

    async def _tell_updated(self, session_id: str) -> None:
        uri = session_uri(session_id)
        for session in list(self._subscribers.get(session_id, {}).values()):
            await notify_quietly(session.send_resource_updated(uri))
        if self._listen_bus.listeners:
            await self._listen_bus.publish(ResourceUpdated(uri=uri))

    # -- what the SDK has no handler seam for --------------------------------------

    async def _middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        legacy = ctx.protocol_version in _SUBSCRIBE_VERSIONS
        match ctx.method:
            case "initialize":
                return _with_capabilities(await call_next(ctx))
            case "notifications/cancelled":
                self._note_cancelled(ctx)
            case "resources/subscribe" if legacy and ctx.request_id is not None:
                return self._subscribe(ctx)
            case "resources/unsubscribe" if legacy and ctx.request_id is not None:
                return self._unsubscribe(ctx)
            case "tools/call" if _asks_for_a_task(ctx):
                return await self.tasks.start(ctx)
        return await call_next(ctx)


def build_server(
    app: Any,
    tools: Sequence[str | TaskTool],
    *,
    tracker: ProgressTracker | None = None,
    options: ServerOptions | None = None,
    canceller: Canceller | None = None,
) -> ProgressMcpServer:
    """An MCP server exposing the Celery tasks named in ``tools`` (and nothing else).

    ``tracker`` defaults to the one :func:`celery_progress_mcp.celery.install`
    gives for ``app``. The server is the SDK's ``MCPServer``: serve it with
    ``run_stdio_async()``, or over HTTP with
    :func:`celery_progress_mcp.mcp.asgi.asgi_app`.
    """
    if tracker is None:
        from ..celery import install  # type: ignore[attr-defined,unused-ignore]

        tracker = install(app)
    return ProgressMcpServer(app, tools, tracker, options=options, canceller=canceller)


def _resolve_tools(app: Any, tools: Sequence[str | TaskTool]) -> dict[str, TaskTool]:
    resolved: dict[str, TaskTool] = {}
    reserved = {tool.name for tool in LOOKAROUND_TOOLS}
    for entry in tools:
        if isinstance(entry, TaskTool):
            tool = entry
        else:
            try:
                task = app.tasks[entry]
            except KeyError:
                raise ConfigError(f"no Celery task named {entry!r} in app {app.main!r}") from None
            tool = tool_from_task(task)
        if tool.name in resolved or tool.name in reserved:
            raise ConfigError(f"tool name {tool.name!r} is used twice")
        resolved[tool.name] = tool
    return resolved


def _request_of(context: Context[Any, Any] | None) -> ServerRequestContext[Any, Any] | None:
    """The SDK request behind ``context``; none for a call made in Python, not over MCP."""
    if context is None:
        return None
    try:
        return context.request_context
    except ValueError:
        return None


def _asks_for_a_task(ctx: ServerRequestContext[Any, Any]) -> bool:
    """A task-augmented ``tools/call`` (2025-11-25 MCP Tasks)."""
    params = ctx.params
    return ctx.request_id is not None and params is not None and params.get("task") is not None


def _with_capabilities(result: HandlerResult) -> HandlerResult:
    """Declare what the middleware serves on 2025-era connections: subscribe, and tasks."""
    if not isinstance(result, dict):
        return result
    version = result.get("protocolVersion")
    capabilities = result.setdefault("capabilities", {})
    if version in _SUBSCRIBE_VERSIONS and isinstance(capabilities.get("resources"), dict):
        capabilities["resources"]["subscribe"] = True
    if version == _TASKS_VERSION:
        capabilities["tasks"] = mcptasks.TASKS_CAPABILITY
    return result


def _subscribed_uri(ctx: ServerRequestContext[Any, Any]) -> str:
    try:
        params = types.SubscribeRequestParams.model_validate(ctx.params or {}, by_name=False)
    except ValidationError:
        raise MCPError(types.INVALID_PARAMS, "Invalid request parameters") from None
    return str(params.uri)


def _session_id_of(uri: str) -> str:
    if not uri.startswith(RESOURCE_PREFIX) or len(uri) == len(RESOURCE_PREFIX):
        raise MCPError(RESOURCE_NOT_FOUND, f"unknown resource {uri!r}", data={"uri": uri})
    return uri[len(RESOURCE_PREFIX) :]


def _connection_of(session: ServerSession) -> Connection | None:
    """The client connection a request came on.

    The one private access in this package: mcp 2.3.0 gives a handler its
    ``Connection`` (public ``state`` and ``exit_stack``, meant for handlers)
    only through ``ServerSession._connection``; ``ServerRequestContext`` has
    no ``connection`` field, and the ``Context`` that has one is not what the
    SDK hands to handlers. A per-request ``ServerSession`` cannot stand in:
    the SDK builds a new one for every request.
    """
    connection = getattr(session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


def _connection_key(session: ServerSession) -> int:
    """Identifies the client connection a request came on (request ids are per connection)."""
    return id(_connection_of(session) or session)


def _on_connection_close(session: ServerSession, callback: Any, *args: Any) -> None:
    """Run ``callback(*args)`` once when the connection closes (its ``exit_stack``)."""
    connection = _connection_of(session)
    if connection is None:
        return
    registered: set[int] = connection.state.setdefault(_CLEANUP_STATE_KEY, set())
    if id(callback) in registered:
        return
    connection.exit_stack.push_async_callback(callback, *args)
    registered.add(id(callback))
