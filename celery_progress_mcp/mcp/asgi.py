"""Serving the MCP server over streamable HTTP, and embedding it in an ASGI app.

Bound to 127.0.0.1 by default. Bound anywhere else a bearer token is
required, and every request must carry ``Authorization: Bearer <token>``,
compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.errors import ConfigError
from ..core.hosts import is_loopback
from .http_address import DEFAULT_HOST, DEFAULT_PORT
from .server import ProgressMcpServer

__all__ = ["BearerToken", "asgi_app", "serve_http"]

#: Path of the MCP endpoint.
MCP_PATH = "/mcp"


class BearerToken:
    """ASGI middleware: HTTP requests need ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ConfigError("the bearer token must not be empty")
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
                break
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        body = b'{"error": "unauthorized"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="celery-progress-mcp"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def asgi_app(
    server: ProgressMcpServer,
    *,
    token: str | None = None,
    host: str = DEFAULT_HOST,
    path: str = MCP_PATH,
    **options: Any,
) -> Starlette:
    """The streamable HTTP app (Starlette) for ``server``, behind a bearer token if given.

    ``host`` is the address served, for the SDK's DNS-rebinding protection;
    ``options`` go to the SDK's ``streamable_http_app``. Mounted inside
    another app, its lifespan must run within the parent's::

        mcp_app = asgi_app(server, token=...)

        @contextlib.asynccontextmanager
        async def lifespan(parent):
            async with mcp_app.router.lifespan_context(mcp_app):
                yield

        parent = Starlette(routes=[Mount("/agents", mcp_app)], lifespan=lifespan)
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve MCP on {host} without a bearer token: "
            "pass a token or bind 127.0.0.1"
        )
    app = server.streamable_http_app(streamable_http_path=path, host=host, **options)
    if token:
        app.add_middleware(BearerToken, token=token)
    return app


def serve_http(
    server: ProgressMcpServer,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until interrupted (uvicorn)."""
    import uvicorn

    app = asgi_app(server, token=token, host=host)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)
