"""How many MCP sessions the HTTP transport holds, and for how long, unless told otherwise.

Free of the SDK, so the command line can show these defaults without the ``mcp`` extra.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_SESSIONS", "DEFAULT_SESSION_IDLE_TIMEOUT_S"]

#: Concurrent MCP sessions held over HTTP; past it a new ``initialize`` gets a 503.
#: Each session holds its own streams and tasks, so an unbounded count is unbounded memory.
DEFAULT_MAX_SESSIONS = 100
#: Seconds a session may go without a request in flight (no call running, no open
#: stream) before it is closed and its memory released; its id then answers 404.
DEFAULT_SESSION_IDLE_TIMEOUT_S = 600.0
