"""Serving the MCP server over streamable HTTP, and embedding it in an ASGI app.

Bound to 127.0.0.1 by default. Bound anywhere else a bearer token is
required, and every request must carry ``Authorization: Bearer <token>``.
Whatever the token, a browser's request from a foreign ``Origin``, or to a
``Host`` that is not this server's, is refused (http_guards.py). Sessions
are capped in number and closed when idle (http_limits.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from ..core.errors import ConfigError
from ..core.hosts import is_loopback
from .http_address import DEFAULT_HOST, DEFAULT_PORT
from .http_guards import BearerToken, OriginGuard, normalize_origin
from .http_limits import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_TIMEOUT_S
from .server import ProgressMcpServer

__all__ = ["asgi_app", "serve_http"]

#: Path of the MCP endpoint.
MCP_PATH = "/mcp"


def asgi_app(
    server: ProgressMcpServer,
    *,
    token: str | None = None,
    host: str = DEFAULT_HOST,
    path: str = MCP_PATH,
    allow_origins: Sequence[str] = (),
    allow_hosts: Sequence[str] = (),
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    session_idle_timeout_s: float = DEFAULT_SESSION_IDLE_TIMEOUT_S,
    **options: Any,
) -> Starlette:
    """The streamable HTTP app (Starlette) for ``server``, behind a bearer token if given.

    ``host`` is the address served. A request with an ``Origin`` is served
    when that origin is this server's own or in ``allow_origins``
    (``scheme://host[:port]``), and a request is served when its ``Host``
    is this server's or in ``allow_hosts``. At most ``max_sessions``
    sessions are open at once; one without a request for
    ``session_idle_timeout_s`` seconds is closed. ``options`` go to the
    SDK's ``streamable_http_app``. Mounted inside another app, its lifespan
    must run within the parent's::

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
    if max_sessions < 1:
        raise ConfigError(f"max_sessions must be at least 1, not {max_sessions}")
    if not 0 < session_idle_timeout_s < float("inf"):
        raise ConfigError(f"session_idle_timeout_s must be positive, not {session_idle_timeout_s}")
    # OriginGuard checks before the token, with the rules above; the SDK's own
    # check would refuse an allowed origin, in plain text, after the token.
    options.setdefault(
        "transport_security", TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    origins = [normalize_origin(origin) for origin in allow_origins]  # refused now, not later
    app = server.streamable_http_app(
        streamable_http_path=path,
        host=host,
        max_sessions=max_sessions,
        session_idle_timeout=session_idle_timeout_s,
        **options,
    )
    if token:
        app.add_middleware(BearerToken, token=token)
    # The last added runs first.
    app.add_middleware(OriginGuard, bind_host=host, allow_origins=origins, allow_hosts=allow_hosts)
    return app


def serve_http(
    server: ProgressMcpServer,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    log_level: str = "warning",
    **options: Any,
) -> None:
    """Serve until interrupted (uvicorn); ``options`` as for :func:`asgi_app`."""
    import uvicorn

    app = asgi_app(server, token=token, host=host, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)
