"""Where the HTTP transport listens, and which addresses count as this machine only."""

from __future__ import annotations

import ipaddress

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_loopback"]

#: Where the HTTP transport listens unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
#: The HTTP transport's default TCP port.
DEFAULT_PORT = 5577


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
