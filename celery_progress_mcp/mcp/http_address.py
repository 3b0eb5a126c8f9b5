"""Where the MCP server's HTTP transport listens unless told otherwise."""

from __future__ import annotations

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT"]

#: Where the HTTP transport listens unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
#: The HTTP transport's default TCP port.
DEFAULT_PORT = 5577
