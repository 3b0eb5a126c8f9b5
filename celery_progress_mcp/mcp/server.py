"""The MCP server: allowlisted Celery tasks as tools, with progress and cancellation.

Built on the official SDK's low-level ``mcp.server.Server`` (the engine
inside ``MCPServer``), not on ``MCPServer`` itself. In mcp 2.3.0
``MCPServer`` lists tools only from Python functions it runs (no
``execution.taskSupport``, output schema from the signature), answers
unknown tools and invalid arguments with ``isError`` results where the
specification wants JSON-RPC errors, lists only static resources, and has
no ``resources/subscribe``. Its only public ways below are a middleware,
whose answers bypass the SDK's result validation and 2026 envelope, and
``Extension.methods``, which refuses specification methods; the low-level
server it wraps is the private ``MCPServer._lowlevel_server``. The
low-level server takes each handler in its documented constructor.

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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import anyio
import anyio.abc
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from pydantic import ValidationError

from ..core.errors import ConfigError, ProgressError
from ..core.models import ProgressSession
from ..core.states import TERMINAL_STATUSES, SessionStatus
from ..tracking.subscription import AsyncSubscription
from ..tracking.tracker import ProgressTracker
from . import mcptasks
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
from .toolspec import InvalidToolArguments, TaskTool, structured_result, tool_from_task

__all__ = ["SESSION_META_KEY", "ProgressMcpServer", "ServerOptions", "build_server"]

logger = logging.getLogger(__name__)

#: ``_meta`` key of a tool result naming the task's progress session.
SESSION_META_KEY = "celery-progress-mcp/session-id"
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


@dataclass(frozen=True)
class ServerOptions:
    name: str = "celery-progress-mcp"
    version: str = ""
    instructions: str | None = None
    run: RunOptions = field(default_factory=RunOptions)
    #: Expose get_progress, list_sessions, cancel_session, progress_stats.
    lookaround_tools: bool = True


class ProgressMcpServer:
    """Holds the SDK server and what its handlers share. See :func:`build_server`."""

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
        self._by_task = {tool.task_name: tool for tool in self.tools.values()}
        self.runner = TaskRunner(app, tracker, options=self.options.run, canceller=canceller)
        self.lookaround = Lookaround(tracker, set(self._by_task), self.runner.cancel)
        self.ledger = mcptasks.TaskLedger()
        self._reasons: dict[tuple[int, str], str] = {}
        self._reason_events: dict[str, list[anyio.Event]] = {}
        self._reason_times: deque[tuple[float, str, int]] = deque()
        #: session id -> (connection key -> the SDK session to notify through)
        self._subscribers: dict[str, dict[int, ServerSession]] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self.server: Server[dict[str, Any]] = Server(
            self.options.name,
            version=self.options.version,
            instructions=self.options.instructions,
            lifespan=self._lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_resource_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
        )
        self.server.add_notification_handler(
            "notifications/cancelled", types.CancelledNotificationParams, self._on_cancelled
        )
        self.server.add_request_handler("tasks/get", types.GetTaskRequestParams, self._task_get)
        self.server.add_request_handler(
            "tasks/result", types.GetTaskPayloadRequestParams, self._task_result
        )
        self.server.add_request_handler("tasks/list", types.PaginatedRequestParams, self._task_list)
        self.server.add_request_handler(
            "tasks/cancel", types.CancelTaskRequestParams, self._task_cancel
        )
        self.server.middleware.append(self._middleware)

    # -- lifespan: background work shared by every connection ---------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as group:
            self._task_group = group
            group.start_soon(self._watch_resources)
            try:
                yield {}
            finally:
                self._task_group = None
                group.cancel_scope.cancel()

    # -- tools -------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
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
        return types.ListToolsResult(tools=listed)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = self.tools.get(params.name)
        if tool is None:
            return await self._call_lookaround(params)
        args, kwargs = _validated(tool, params.arguments)
        task_id = str(uuid.uuid4())
        wants_progress = progress_token_from_params(ctx.params) is not None
        subscription = await self.runner.subscribe(task_id)
        try:
            sent_at_s = time.monotonic()
            await self.runner.send(tool, args, kwargs, task_id)

            async def report(notice: ProgressNotice) -> None:
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
                reason = await self._reason_for(ctx)
                await self.runner.cancel(task_id, reason)
            raise
        finally:
            subscription.close()
        return self.tool_result(tool, outcome, task_id)

    async def _fail_unsent(self, task_id: str, message: str) -> None:
        """A session made at dispatch for a task that never left must not wait for ever."""

        def fail() -> None:
            with contextlib.suppress(ProgressError):
                self.tracker.fail_session(task_id, message, "NOT_SENT")

        await anyio.to_thread.run_sync(fail)

    def tool_result(
        self, tool: TaskTool, outcome: Outcome, session_id: str
    ) -> types.CallToolResult:
        meta = {SESSION_META_KEY: session_id}
        if not outcome.ok:
            code = f" [{outcome.error_code}]" if outcome.error_code else ""
            text = f"task {tool.task_name} {outcome.status}{code}: {outcome.error}"
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=text)], is_error=True, _meta=meta
            )
        try:
            text = json.dumps(outcome.value)
        except (TypeError, ValueError):
            text = str(outcome.value)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=structured_result(tool, outcome.value),
            _meta=meta,
        )

    async def _call_lookaround(self, params: types.CallToolRequestParams) -> types.CallToolResult:
        model = ARGUMENTS.get(params.name)
        if model is None or not self.options.lookaround_tools:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        try:
            arguments = model.model_validate(params.arguments or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise MCPError(
                types.INVALID_PARAMS, f"invalid arguments for tool {params.name!r}: {problems}"
            ) from None
        try:
            value = await self.lookaround.call(arguments)
        except (LookaroundError, ProgressError) as exc:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(value))],
            structured_content=value,
        )

    # -- cancellation --------------------------------------------------------------

    async def _on_cancelled(
        self, ctx: ServerRequestContext[Any], params: types.CancelledNotificationParams
    ) -> None:
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

    async def _reason_for(self, ctx: ServerRequestContext[Any]) -> str:
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

    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=await self.lookaround.resources())

    async def _list_resource_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            uri_template=RESOURCE_TEMPLATE,
            name="progress session",
            description="A progress session (session id = Celery task id), as JSON.",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            text = await self.lookaround.read(uri)
        except LookaroundError as exc:
            raise MCPError(RESOURCE_NOT_FOUND, str(exc), data={"uri": uri}) from None
        contents = types.TextResourceContents(uri=uri, mime_type="application/json", text=text)
        return types.ReadResourceResult(contents=[contents])

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        session_id = _session_id_of(str(params.uri))
        connection = _connection_key(ctx.session)
        self._subscribers.setdefault(session_id, {})[connection] = ctx.session
        _on_connection_close(ctx.session, self._forget_connection, connection)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        session_id = _session_id_of(str(params.uri))
        subscribers = self._subscribers.get(session_id, {})
        subscribers.pop(_connection_key(ctx.session), None)
        if not subscribers:
            self._subscribers.pop(session_id, None)
        return types.EmptyResult()

    async def _forget_connection(self, connection: int) -> None:
        for session_id in list(self._subscribers):
            subscribers = self._subscribers[session_id]
            subscribers.pop(connection, None)
            if not subscribers:
                del self._subscribers[session_id]

    async def _watch_resources(self) -> None:
        """Send ``notifications/resources/updated`` to subscribers, at most once per window."""
        raw = await anyio.to_thread.run_sync(lambda: self.tracker.subscribe_to_events())
        subscription = AsyncSubscription(raw)
        interval_s = self.tracker.config.update_interval_s
        dirty: set[str] = set()
        last_flush_s = float("-inf")
        try:
            while True:
                event = await subscription.get(interval_s if dirty else None)
                if event is not None and event.session_id in self._subscribers:
                    dirty.add(event.session_id)
                    if event.data.get("status") in TERMINAL_STATUSES:
                        last_flush_s = float("-inf")  # an ending is never held back
                now_s = time.monotonic()
                if dirty and now_s - last_flush_s >= interval_s:
                    last_flush_s = now_s
                    pending, dirty = dirty, set()
                    for session_id in pending:
                        for session in list(self._subscribers.get(session_id, {}).values()):
                            await _notify_quietly(
                                session.send_resource_updated(session_uri(session_id))
                            )
        finally:
            subscription.close()

    # -- MCP Tasks ---------------------------------------------------------------------

    async def _middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "initialize":
            result = await call_next(ctx)
            if isinstance(result, dict) and result.get("protocolVersion") == "2025-11-25":
                capabilities = result.setdefault("capabilities", {})
                capabilities["tasks"] = mcptasks.TASKS_CAPABILITY
            return result
        if (
            ctx.method == "tools/call"
            and ctx.request_id is not None
            and isinstance(ctx.params, Mapping)
            and ctx.params.get("task") is not None
        ):
            # A task-augmented call answers with a CreateTaskResult, which the
            # SDK's tools/call result check would refuse: answered here.
            return await self._start_task(ctx)
        return await call_next(ctx)

    async def _start_task(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
        try:
            params = types.CallToolRequestParams.model_validate(ctx.params, by_name=False)
        except ValidationError:
            raise MCPError(types.INVALID_PARAMS, "Invalid request parameters") from None
        tool = self.tools.get(params.name)
        if tool is None:
            raise MCPError(
                types.INVALID_PARAMS, f"Unknown tool (or no task support): {params.name}"
            )
        args, kwargs = _validated(tool, params.arguments)
        ttl_ms = params.task.ttl if params.task is not None else None
        task_id = str(uuid.uuid4())
        subscription = await self.runner.subscribe(task_id)
        try:
            await self.runner.send(tool, args, kwargs, task_id)
        except BaseException:
            subscription.close()
            raise
        self.ledger.add(task_id, ttl_ms)
        token = progress_token_from_params(ctx.params)
        group = self._task_group
        if group is not None:
            group.start_soon(self._follow_task, task_id, subscription, ctx.session, token)
        else:
            subscription.close()
        try:
            session = await anyio.to_thread.run_sync(self.tracker.get_session, task_id)
            view = mcptasks.task_view(session, ttl_ms)
        except ProgressError:  # an untracked task: no session yet
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            view = {
                "taskId": task_id,
                "status": "working",
                "createdAt": now,
                "lastUpdatedAt": now,
                "ttl": ttl_ms,
                "pollInterval": mcptasks.POLL_INTERVAL_MS,
            }
        return {"task": view}

    async def _follow_task(
        self,
        task_id: str,
        subscription: AsyncSubscription,
        session: ServerSession,
        token: str | int | None,
    ) -> None:
        """Progress on the connection's own channel, then ``notifications/tasks/status``."""

        async def report(notice: ProgressNotice) -> None:
            assert token is not None
            await _notify_quietly(
                session.send_progress_notification(
                    token, notice.progress, notice.total, notice.message
                )
            )

        try:
            await self.runner.follow(task_id, subscription, report if token is not None else None)
            ended = await anyio.to_thread.run_sync(self.tracker.get_session, task_id)
            params = mcptasks.task_view(ended, self.ledger.ttl(task_id))
            status = types.TaskStatusNotification(
                params=types.TaskStatusNotificationParams.model_validate(params)
            )
            # Not in the SDK's ServerNotification union (tasks are types-only
            # there), but sent like any notification: on the connection's channel.
            await _notify_quietly(session.send_notification(cast(Any, status)))
        except ProgressError as exc:
            logger.debug("task %s: no final status to send: %s", task_id, exc)
        finally:
            subscription.close()

    async def _visible_session(self, task_id: str) -> ProgressSession:
        session = await mcptasks.session_or_error(self.tracker.get_session, task_id)
        if session.operation_id not in self._by_task:
            raise mcptasks.unknown_task(task_id)
        return session

    async def _task_get(
        self, ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams
    ) -> dict[str, Any]:
        session = await self._visible_session(params.task_id)
        return mcptasks.task_view(session, self.ledger.ttl(session.id))

    async def _task_result(
        self, ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams
    ) -> dict[str, Any]:
        session = await self._visible_session(params.task_id)
        tool = self._by_task[session.operation_id]
        if session.status in TERMINAL_STATUSES:
            outcome = await self.runner.outcome_of(session.id)
        else:
            subscription = await self.runner.subscribe(session.id)
            try:
                outcome = await self.runner.follow(session.id, subscription, None)
            finally:
                subscription.close()
        result = self.tool_result(tool, outcome, session.id)
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        dumped.pop("resultType", None)  # a 2026-07-28 field; tasks are 2025-11-25
        dumped.setdefault("_meta", {})[mcptasks.RELATED_TASK_KEY] = {"taskId": session.id}
        return dumped

    async def _task_list(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams
    ) -> dict[str, Any]:
        try:
            offset = int(params.cursor or 0)
        except ValueError:
            raise MCPError(types.INVALID_PARAMS, "invalid cursor") from None
        tracker = self.tracker
        names = list(self._by_task)
        page = mcptasks.PAGE_SIZE

        def query() -> list[ProgressSession]:
            found: list[ProgressSession] = []
            for name in names:
                found.extend(tracker.list_sessions(operation_id=name, limit=offset + page + 1))
            found.sort(key=lambda s: (s.created_at, s.id), reverse=True)
            return found[offset : offset + page + 1]

        sessions = await anyio.to_thread.run_sync(query)
        listed: dict[str, Any] = {
            "tasks": [mcptasks.task_view(s, self.ledger.ttl(s.id)) for s in sessions[:page]]
        }
        if len(sessions) > page:
            listed["nextCursor"] = str(offset + page)
        return listed

    async def _task_cancel(
        self, ctx: ServerRequestContext[Any], params: types.CancelTaskRequestParams
    ) -> dict[str, Any]:
        session = await self._visible_session(params.task_id)
        if session.status in TERMINAL_STATUSES:
            raise MCPError(
                types.INVALID_PARAMS,
                f"Cannot cancel task: already in terminal status {mcptasks.task_status(session)!r}",
            )
        await self.runner.cancel(session.id, "cancelled by the MCP client (tasks/cancel)")
        session = await self._visible_session(params.task_id)
        return mcptasks.task_view(session, self.ledger.ttl(session.id))

    # -- running -------------------------------------------------------------------

    async def run_stdio(self) -> None:
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read_stream, write_stream):
            await self.server.run(
                read_stream, write_stream, self.server.create_initialization_options()
            )


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
    gives for ``app``. Use ``.server`` (the SDK server), ``.run_stdio()``, or
    :func:`celery_progress_mcp.mcp.asgi.asgi_app` to serve it over HTTP.
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


def _validated(
    tool: TaskTool, arguments: dict[str, Any] | None
) -> tuple[list[Any], dict[str, Any]]:
    try:
        return tool.validate(arguments)
    except InvalidToolArguments as exc:
        raise MCPError(types.INVALID_PARAMS, str(exc), data={"problems": exc.problems}) from None


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


async def _notify_quietly(sending: Any) -> None:
    """Await a notification; a client gone away is not an error of ours."""
    try:
        await sending
    except Exception as exc:
        logger.debug("notification not delivered: %s", exc)
