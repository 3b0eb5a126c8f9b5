"""The MCP server: allowlisted Celery tasks as tools, with progress and cancellation.

:class:`ProgressMcpServer` is the official SDK's ``MCPServer``, made to
serve Celery tasks through its public surface; this module is the glue,
and each concern has a module of its own:

- its public ``list_tools`` / ``call_tool`` and ``list_resources`` /
  ``list_resource_templates`` / ``read_resource`` methods are overridden, so
  tools carry the task's schemas and ``execution.taskSupport``
  (celery_tools.py), the session tools and resources are served
  (session_tools.py), and unknown tools and invalid arguments get JSON-RPC
  errors (``MCPError`` is what ``MCPServer`` passes through as an error;
  anything else becomes ``isError``);
- MCP Tasks' ``tasks/*`` methods are an SDK ``Extension`` (tasks_extension.py);
- its public middleware answers what the SDK has no handler seam for: a
  task-augmented ``tools/call`` (its ``CreateTaskResult`` is not a
  ``tools/call`` result), 2025-era ``resources/subscribe`` /
  ``resources/unsubscribe`` (resource_subscriptions.py), the ``tasks`` and
  ``resources.subscribe`` capabilities, and the reason a
  ``notifications/cancelled`` carries (cancel_reasons.py).

Every tracker call goes through an ``AsyncProgressTracker`` wrapping the
tracker given, and every call to the broker or the result backend through
an ``AsyncCelery`` (celery_calls.py): nothing blocks the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import anyio
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from pydantic import AnyUrl

from .. import __version__
from ..tracking.aio import AsyncProgressTracker
from ..tracking.tracker import ProgressTracker
from .cancel_reasons import CancelReasons
from .celery_calls import Canceller
from .celery_tools import SESSION_META_KEY, CeleryTools, resolve_tools
from .resource_subscriptions import ResourceSubscriptions
from .runner import RunOptions, TaskRunner
from .session_tools import ARGUMENTS, SESSION_RESOURCE_TEMPLATE, SESSION_TOOLS, SessionTools
from .tasks_extension import TASKS_CAPABILITY, McpTasks
from .toolspec import TaskTool
from .visible_sessions import VisibleSessions

__all__ = ["SESSION_META_KEY", "ProgressMcpServer", "ServerOptions", "build_server"]

logger = logging.getLogger(__name__)

#: The protocol versions that have ``resources/subscribe`` (2026-07-28 has
#: ``subscriptions/listen`` instead).
_SUBSCRIBE_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
#: The protocol version MCP Tasks belong to.
_TASKS_VERSION = "2025-11-25"
#: The distribution whose version the server reports as ``serverInfo.version``.
_DISTRIBUTION = "celery-progress-mcp"


def _package_version() -> str:
    """The version installed; the one the package declares when it runs from a bare tree."""
    try:
        return metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return __version__


@dataclass(frozen=True)
class ServerOptions:
    name: str = "celery-progress-mcp"
    #: ``serverInfo.version``: the package's version unless given.
    version: str = field(default_factory=_package_version)
    instructions: str | None = None
    run: RunOptions = field(default_factory=RunOptions)
    #: Expose the session tools: get_progress, list_sessions, cancel_session, progress_stats.
    lookaround_tools: bool = True


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
        self.tools = resolve_tools(app, tools, reserved={tool.name for tool in SESSION_TOOLS})
        tracked = AsyncProgressTracker(tracker=tracker)
        self.runner = TaskRunner(app, tracked, options=self.options.run, canceller=canceller)
        self.reasons = CancelReasons()
        self.celery_tools = CeleryTools(self.tools, self.runner, self.reasons)
        visible = VisibleSessions(tracked, {tool.task_name for tool in self.tools.values()})
        self.session_tools = SessionTools(visible, self.runner.cancel)
        self.tasks = McpTasks(self.tools, self.runner, visible)
        self.subscriptions = ResourceSubscriptions(tracked)
        super().__init__(
            self.options.name,
            version=self.options.version,
            instructions=self.options.instructions,
            lifespan=self._lifespan,
            extensions=[self.tasks],
            subscriptions=self.subscriptions.listen_bus,
            middleware=[self._middleware],
        )

    # -- lifespan: background work shared by every connection ---------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: MCPServer[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as group:
            self.tasks.task_group = group
            await group.start(self.subscriptions.watch)  # subscribed before serving
            try:
                yield {}
            finally:
                self.tasks.task_group = None
                group.cancel_scope.cancel()

    # -- stdio: a client that dies is the end of the conversation, not a crash ------

    async def run_stdio_async(self) -> None:
        """Serve over stdin/stdout until the client closes them or goes away.

        A client killed mid-call leaves a broken pipe where the next progress
        notice goes: its calls end with one log line, not a traceback.
        """
        try:
            await super().run_stdio_async()
        except* (BrokenPipeError, ConnectionResetError) as gone:
            logger.warning("MCP client gone (%s): its calls end here", _first_leaf(gone))
            _discard_stdout()

    # -- tools -------------------------------------------------------------------

    async def list_tools(self) -> list[types.Tool]:
        listed = self.celery_tools.listed()
        if self.options.lookaround_tools:
            listed.extend(SESSION_TOOLS)
        return listed

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Context[dict[str, Any], Any] | None = None,
    ) -> types.CallToolResult:
        tool = self.tools.get(name)
        if tool is not None:
            return await self.celery_tools.call(tool, arguments, _request_of(context))
        if name not in ARGUMENTS or not self.options.lookaround_tools:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
        return await self.session_tools.call(name, arguments)

    # -- resources --------------------------------------------------------------------

    async def list_resources(self) -> list[types.Resource]:
        return await self.session_tools.resources()

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return [SESSION_RESOURCE_TEMPLATE]

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[dict[str, Any], Any] | None = None
    ) -> Iterable[ReadResourceContents]:
        text = await self.session_tools.read(str(uri))
        return [ReadResourceContents(content=text, mime_type="application/json")]

    # -- what the SDK has no handler seam for --------------------------------------

    async def _middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        legacy = ctx.protocol_version in _SUBSCRIBE_VERSIONS
        match ctx.method:
            case "initialize":
                return _with_capabilities(await call_next(ctx))
            case "notifications/cancelled":
                self.reasons.note(ctx)
            case "resources/subscribe" if legacy and ctx.request_id is not None:
                return self.subscriptions.subscribe(ctx)
            case "resources/unsubscribe" if legacy and ctx.request_id is not None:
                return self.subscriptions.unsubscribe(ctx)
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

        # MCP sessions are single tasks: the server's canceller revokes them itself.
        tracker = install(app).tracker
    return ProgressMcpServer(app, tools, tracker, options=options, canceller=canceller)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception in ``group`` that is not itself a group."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _discard_stdout() -> None:
    """Point stdout at /dev/null: what is left in its buffer would break at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


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
        capabilities["tasks"] = TASKS_CAPABILITY
    return result
