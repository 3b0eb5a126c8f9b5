"""The MCP server: allowlisted Celery tasks as MCP tools, with progress and cancellation.

Needs the ``mcp`` extra (``pip install 'celery-progress-mcp[mcp]'``).
"""

from .asgi import BearerToken, asgi_app, serve_http
from .notices import Pacer, ProgressMapper, ProgressNotice
from .runner import Outcome, RunOptions, TaskRunner
from .server import ProgressMcpServer, ServerOptions, build_server
from .toolspec import InvalidToolArguments, TaskTool, tool_from_task

__all__ = [
    "BearerToken",
    "InvalidToolArguments",
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
