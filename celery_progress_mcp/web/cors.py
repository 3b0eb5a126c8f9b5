"""CORS for the read-only endpoints, for the origins listed and no other.

A page served from another origin (a Django site running celery-progress's
``celery_progress.js``, a front-end of its own) may read
``/celery-progress/...`` and the JSON API's GETs when its origin is listed
(``create_app(cors_origins=...)``, ``dashboard --cors-origin``). Nothing is
sent by default, and never:

* for the state-changing actions (``POST .../cancel|pause|resume``): a
  preflight for them is not granted, so the CSRF defence stays whole;
* for the pages, ``/metrics`` or the static files;
* ``Access-Control-Allow-Credentials``: the login cookie never crosses
  origins. Where the dashboard asks for a token, a listed origin must send
  it itself (``Authorization: Bearer``, allowed by the preflight);
  ``celery_progress.js`` sends none, so it reads a dashboard that asks for
  no credentials (the loopback default) or one behind a proxy that adds them.
* for ``*``: every origin must be named (a wildcard would let any site the
  user visits read the local dashboard).

Responses that a listed origin may read carry ``Vary: Origin``.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import ConfigError
from .security import route_path

__all__ = ["CORS_PREFIXES", "CorsMiddleware", "checked_origins"]

#: Paths whose GETs a listed origin may read.
CORS_PREFIXES = ("/celery-progress/", "/api/")
#: The only methods granted to another origin.
_READ_METHODS = frozenset({"GET", "HEAD"})
#: Request headers a preflight grants: a token, and SSE's resume point.
_ALLOWED_HEADERS = frozenset({"authorization", "last-event-id"})
#: How long a browser may keep a granted preflight, in seconds.
PREFLIGHT_MAX_AGE_S = 600


def checked_origins(origins: Collection[str]) -> frozenset[str]:
    """``scheme://host[:port]`` each, as browsers send them; a :class:`ConfigError` else."""
    checked: set[str] = set()
    for origin in origins:
        parts = urlsplit(origin.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise ConfigError(
                f"not a CORS origin: {origin!r} (expected scheme://host[:port], "
                "e.g. https://app.example.com; no wildcard, no path)"
            )
        checked.add(f"{parts.scheme}://{parts.netloc.lower()}")
    return frozenset(checked)


class CorsMiddleware:
    """Grants the listed origins the read-only endpoints; outermost, so a 401 is readable too."""

    def __init__(self, app: ASGIApp, origins: Collection[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.origins
            or not route_path(scope).startswith(CORS_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        granted = origin is not None and origin in self.origins
        method: str = scope["method"]
        requested = headers.get("access-control-request-method")
        if method == "OPTIONS" and requested is not None and granted:
            asked = {
                name.strip().lower()
                for name in headers.get("access-control-request-headers", "").split(",")
                if name.strip()
            }
            if requested in _READ_METHODS and asked <= _ALLOWED_HEADERS:
                await _preflight(send, origin or "")
                return
        if method not in _READ_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.add_vary_header("Origin")
                if granted:
                    response_headers["access-control-allow-origin"] = origin or ""
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _preflight(send: Send, origin: str) -> None:
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", b"GET, HEAD"),
        (b"access-control-allow-headers", b"Authorization, Last-Event-ID"),
        (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
