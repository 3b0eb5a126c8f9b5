"""What an HTTP request to the MCP endpoint must pass before it reaches the transport.

:class:`OriginGuard` is the MCP specification's defence against DNS
rebinding: a browser page on a foreign site must not reach a server on this
machine or network, even when it has made its own name resolve to it. So
the ``Origin`` header, when present, must be one allowed or this server's
own, and the ``Host`` header must name this server, whatever the
credentials. :class:`BearerToken` then asks for the token.

Both answer a refusal with a JSON-RPC error (no id), as the transport does.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.errors import ConfigError
from ..core.hosts import is_loopback

__all__ = ["BearerToken", "OriginGuard", "normalize_origin"]

logger = logging.getLogger(__name__)

#: JSON-RPC's "Invalid Request", the code of every refusal here.
_INVALID_REQUEST = -32600
#: The port a browser leaves out of an ``Origin`` for each scheme.
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Bind addresses that mean "every interface": not a name any request carries.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
#: At most this much of a refused header goes to the log.
_LOGGED_CHARS = 200


async def _refuse(
    send: Send, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer ``status`` with a JSON-RPC error body carrying ``message``."""
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": _INVALID_REQUEST, "message": message}}
    body = json.dumps(error).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _split(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a serialized origin; None if it is not one."""
    try:
        parts = urlsplit(origin)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host or parts.path or parts.query or parts.username:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def normalize_origin(origin: str) -> str:
    """``scheme://host:port``, lower-case, the port explicit; ConfigError if not an origin."""
    split = _split(origin.strip().rstrip("/"))
    if split is None:
        raise ConfigError(f"not an origin (scheme://host[:port]): {origin!r}")
    scheme, host, port = split
    return f"{scheme}://{_bracketed(host)}:{port}"


def _host_name(host: str) -> str | None:
    """The lower-case name in a ``Host`` value (``name[:port]``, ``[v6][:port]``)."""
    try:
        return urlsplit(f"//{host}").hostname
    except ValueError:
        return None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class OriginGuard:
    """ASGI middleware: a foreign ``Origin`` gets a 403, a foreign ``Host`` a 421.

    No ``Origin`` (a client that is not a browser) passes. An ``Origin`` passes
    when it is in ``allow_origins`` or is this server's own: its port the
    port the request came in on, its host a loopback name, the bound address
    or the address the request came in on. A ``Host`` passes when it names one
    of those, a host of ``allow_hosts`` or the host of an allowed origin.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str,
        allow_origins: Iterable[str] = (),
        allow_hosts: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._origins = frozenset(normalize_origin(origin) for origin in allow_origins)
        hosts = {_host_name(host.strip()) for host in allow_hosts}  # a port there is ignored
        hosts.update(urlsplit(origin).hostname for origin in self._origins)
        if bind_host.strip("[]") not in _WILDCARD_HOSTS:
            hosts.add(_host_name(_bracketed(bind_host.strip("[]"))))
        self._hosts = frozenset(host for host in hosts if host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is not None and not self._origin_allowed(origin, scope):
            logger.warning("MCP request refused: Origin %r", origin[:_LOGGED_CHARS])
            await _refuse(send, 403, "forbidden: the Origin is not allowed")
            return
        host = _header(scope, b"host")
        if host is not None and not self._host_allowed(host, scope):
            logger.warning("MCP request refused: Host %r", host[:_LOGGED_CHARS])
            await _refuse(send, 421, "misdirected request: the Host is not this server")
            return
        await self.app(scope, receive, send)

    def _own(self, host: str, scope: Scope) -> bool:
        server = scope.get("server")
        return (
            is_loopback(host) or host in self._hosts or (server is not None and host == server[0])
        )

    def _origin_allowed(self, origin: str, scope: Scope) -> bool:
        split = _split(origin)
        if split is None:
            return False  # "null" too: a sandboxed page or a file is no client of ours
        scheme, host, port = split
        if f"{scheme}://{_bracketed(host)}:{port}" in self._origins:
            return True
        server = scope.get("server")
        return server is not None and port == server[1] and self._own(host, scope)

    def _host_allowed(self, host: str, scope: Scope) -> bool:
        name = _host_name(host)
        return name is not None and self._own(name, scope)


class BearerToken:
    """ASGI middleware: HTTP requests need ``Authorization: Bearer <token>``.

    The scheme is compared without regard to case (RFC 9110: ``bearer``
    is ``Bearer``), the token in constant time.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ConfigError("the bearer token must not be empty")
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scheme, _, given = (_header(scope, b"authorization") or "").partition(" ")
        matches = hmac.compare_digest(given.strip(" ").encode("latin-1"), self._expected)
        if matches and scheme.lower() == "bearer":
            await self.app(scope, receive, send)
            return
        challenge = (b"www-authenticate", b'Bearer realm="celery-progress-mcp"')
        await _refuse(send, 401, "unauthorized: a bearer token is required", [challenge])
