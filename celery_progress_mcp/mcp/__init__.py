"""The MCP server: allowlisted Celery tasks as MCP tools, with progress and cancellation.

Needs the ``mcp`` extra (``pip install 'celery-progress-mcp[mcp]'``). Names
load on first use, so the package's command line works without the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asgi import asgi_app, serve_http
    from .http_address import DEFAULT_HOST, DEFAULT_PORT
    from .http_guards import BearerToken, OriginGuard
    from .http_limits import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_TIMEOUT_S
    from .progress_notices import Pacer, ProgressMapper, ProgressNotice
    from .runner import Outcome, RunOptions, TaskRunner
    from .server import ProgressMcpServer, ServerOptions, build_server
    from .toolspec import InvalidToolArguments, TaskTool, tool_from_task

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_PORT",
    "DEFAULT_SESSION_IDLE_TIMEOUT_S",
    "BearerToken",
    "InvalidToolArguments",
    "OriginGuard",
    "Outcome",
    "Pacer",
    "ProgressMapper",
    "ProgressMcpServer",
    "ProgressNotice",
    "RunOptions",
    "ServerOptions",
    "TaskRunner",
    "TaskTool",
    "asgi_app",
    "build_server",
    "serve_http",
    "tool_from_task",
]

_HOMES = {
    "asgi_app": "asgi",
    "serve_http": "asgi",
    "DEFAULT_HOST": "http_address",
    "DEFAULT_PORT": "http_address",
    "BearerToken": "http_guards",
    "OriginGuard": "http_guards",
    "DEFAULT_MAX_SESSIONS": "http_limits",
    "DEFAULT_SESSION_IDLE_TIMEOUT_S": "http_limits",
    "Pacer": "progress_notices",
    "ProgressMapper": "progress_notices",
    "ProgressNotice": "progress_notices",
    "Outcome": "runner",
    "RunOptions": "runner",
    "TaskRunner": "runner",
    "ProgressMcpServer": "server",
    "ServerOptions": "server",
    "build_server": "server",
    "InvalidToolArguments": "toolspec",
    "TaskTool": "toolspec",
    "tool_from_task": "toolspec",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
