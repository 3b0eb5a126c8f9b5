"""Where the HTTP transport listens, and which addresses count as this machine only."""

from __future__ import annotations

from ..core.hosts import is_loopback

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_loopback"]

#: Where the HTTP transport listens unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
#: The HTTP transport's default TCP port.
DEFAULT_PORT = 5577
