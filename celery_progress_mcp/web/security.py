"""Authentication, CSRF and host checks, as one ASGI middleware.

* Authentication, when a token or a basic-auth pair is configured: an
  ``Authorization: Bearer <token>`` header (any case of the scheme), HTTP
  basic auth, or the session cookie that the login form sets. The cookie
  holds an HMAC of the token, never the token itself; every comparison uses
  :func:`hmac.compare_digest`. A token is at least :data:`MIN_TOKEN_CHARS`
  characters, none of them whitespace (:func:`token_problem`).
* Never from a query string: a ``token`` parameter is dropped from the
  request before anything sees it, the server's access log included (it
  logs the request's scope, changed in place), so a token pasted into a URL
  opens nothing and is written nowhere.
* Failed logins are throttled per client address (:mod:`.throttle`).
* Every redirect names a path of this app, never another site.
* CSRF: a state-changing request must carry the ``X-Requested-With`` header
  (a cross-site form cannot set it, and a cross-site fetch that sets it needs
  a CORS preflight this app never grants), and its ``Origin``, when sent,
  must be this app's own.
* DNS rebinding: without authentication only loopback host names are served,
  so a page on another site that rebinds its name to 127.0.0.1 gets nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Collection, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .throttle import LoginThrottle

__all__ = [
    "CSRF_HEADER",
    "LOOPBACK_HOSTS",
    "MACHINE_PREFIXES",
    "MIN_TOKEN_CHARS",
    "SESSION_COOKIE",
    "AuthSettings",
    "SecurityMiddleware",
    "client_address",
    "cookie_value",
    "local_path",
    "route_path",
    "token_problem",
]

#: The header every state-changing request must carry (any non-empty value).
CSRF_HEADER = "x-requested-with"
#: The cookie that keeps a browser logged in.
SESSION_COOKIE = "celery_progress_session"
#: Served without authentication only under these names.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: Lifetime of the login cookie, in seconds.
COOKIE_MAX_AGE_S = 12 * 3600
#: The shortest token accepted: shorter ones fall to guessing even when throttled.
MIN_TOKEN_CHARS = 16
#: The query parameter dropped from every request (tokens never travel in URLs).
_TOKEN_PARAM = "token"
#: Paths reachable without logging in (the login form and its assets).
_PUBLIC_PREFIXES = ("/login", "/static/")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths answered with a 401 (machines); other paths send a browser to the login form.
MACHINE_PREFIXES = ("/api/", "/metrics", "/celery-progress/")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    token: str | None = None
    #: ``(username, password)`` for HTTP basic auth.
    basic: tuple[str, str] | None = None
    #: Host names served; None: any when authentication is on, loopback names when off.
    allowed_hosts: Collection[str] | None = None
    #: Origins accepted on state-changing requests besides the app's own.
    trusted_origins: Collection[str] = ()

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic is not None

    def token_ok(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            candidate.encode(), self.token.encode()
        )

    def basic_ok(self, encoded: str) -> bool:
        if self.basic is None:
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        expected_user, expected_password = self.basic
        # Both compared, always, so timing tells nothing about which was wrong.
        user_ok = hmac.compare_digest(user.encode(), expected_user.encode())
        password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
        return user_ok and password_ok

    def cookie_ok(self, candidate: str) -> bool:
        expected = cookie_value(self)
        return expected is not None and hmac.compare_digest(candidate.encode(), expected.encode())


def token_problem(token: str) -> str | None:
    """Why ``token`` may not guard a dashboard, or None when it may."""
    if not token.strip():
        return "the token must not be empty or whitespace"
    if any(char.isspace() for char in token):
        return "the token must not contain whitespace (it travels in an HTTP header)"
    if len(token) < MIN_TOKEN_CHARS:
        return f"the token must be at least {MIN_TOKEN_CHARS} characters, got {len(token)}"
    return None


def cookie_value(settings: AuthSettings) -> str | None:
    """The login cookie's value: an HMAC of the secret, so the cookie never reveals it."""
    secret = settings.token if settings.token is not None else _basic_secret(settings)
    if secret is None:
        return None
    return hmac.new(secret.encode(), b"celery-progress-mcp dashboard", hashlib.sha256).hexdigest()


def _basic_secret(settings: AuthSettings) -> str | None:
    return None if settings.basic is None else "\0".join(settings.basic)


def route_path(scope: Scope) -> str:
    """The path inside this app, wherever it is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def client_address(scope: Scope) -> str:
    """The TCP peer's address (what failed logins are counted by)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def local_path(location: str) -> str:
    """A redirect target as a path on this site, whatever it named.

    An absolute URL keeps only its path and query; leading slashes and
    backslashes are collapsed to one slash, since browsers read ``//host``
    and ``/\\host`` as another site; anything else (a relative target)
    becomes ``/``.
    """
    parts = urlsplit(location)
    if parts.scheme or parts.netloc:
        # Starlette's own redirects are absolute URLs of this site: their path is enough.
        location = parts.path + (f"?{parts.query}" if parts.query else "")
    if not location.startswith("/"):
        return "/"
    return "/" + location.lstrip("/\\")


class SecurityMiddleware:
    def __init__(
        self, app: ASGIApp, settings: AuthSettings, throttle: LoginThrottle | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _drop_query_token(scope)
        send = _local_redirects(send)
        headers = Headers(scope=scope)
        path = route_path(scope)
        method: str = scope["method"]
        if not self._host_ok(headers):
            await _reply(send, 400, "bad_host", "this host name is not served here")
            return
        if method not in _SAFE_METHODS:
            problem = self._csrf_problem(scope, headers, path)
            if problem:
                await _reply(send, 403, "csrf", problem)
                return
        scope.setdefault("state", {})
        if not self.settings.required or path.startswith(_PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        attempted = _credentials(headers) is not None
        wait_s = self.throttle.retry_after_s(address) if attempted else None
        if wait_s is not None:
            await _reply_throttled(send, wait_s)
            return
        if self._authenticated(headers):
            await self.app(scope, receive, send)
            return
        if attempted:
            self.throttle.failed(address)
        await self._refuse(scope, send, path)

    def _host_ok(self, headers: Headers) -> bool:
        allowed = self.settings.allowed_hosts
        if allowed is None:
            if self.settings.required:
                return True
            allowed = LOOPBACK_HOSTS
        if "*" in allowed:
            return True
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.lower() in allowed or host.lower() in allowed

    def _csrf_problem(self, scope: Scope, headers: Headers, path: str) -> str | None:
        origin = headers.get("origin")
        if origin is not None and origin != "null":
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
            if origin != own and origin not in self.settings.trusted_origins:
                return f"cross-origin request refused (Origin {origin!r})"
        elif origin == "null":
            return "request from an opaque origin refused"
        if path.startswith(("/login", "/logout")):
            return None  # plain forms, protected by the Origin check and SameSite
        if not headers.get(CSRF_HEADER):
            return f"a state-changing request must carry the {CSRF_HEADER} header"
        return None

    def _authenticated(self, headers: Headers) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.settings.token_ok(credentials.strip()):
            return True
        if scheme == "basic" and self.settings.basic_ok(credentials.strip()):
            return True
        cookie = _cookie(headers)
        return cookie is not None and self.settings.cookie_ok(cookie)

    async def _refuse(self, scope: Scope, send: Send, path: str) -> None:
        if path.startswith(MACHINE_PREFIXES) or path == "/metrics":
            challenges = []
            if self.settings.token is not None:
                challenges.append((b"www-authenticate", b'Bearer realm="celery-progress-mcp"'))
            if self.settings.basic is not None:
                challenges.append((b"www-authenticate", b'Basic realm="celery-progress-mcp"'))
            await _reply(send, 401, "unauthorized", "authentication required", challenges)
            return
        if self.settings.token is None:
            # Basic auth only: let the browser ask for the credentials.
            challenge = [(b"www-authenticate", b'Basic realm="celery-progress-mcp"')]
            await _reply(send, 401, "unauthorized", "authentication required", challenge)
            return
        query = _query_string(scope)
        target = route_path(scope) + (f"?{query}" if query else "")
        location = scope.get("root_path", "") + "/login?" + urlencode({"next": target})
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def session_cookie_header(settings: AuthSettings, scope: Scope) -> str:
    value = cookie_value(settings) or ""
    path = scope.get("root_path", "") or "/"
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return (
        f"{SESSION_COOKIE}={value}; Path={path}; Max-Age={COOKIE_MAX_AGE_S}; "
        f"HttpOnly; SameSite=Strict{secure}"
    )


def _cookie(headers: Headers) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is simply no login
        return None
    morsel = jar.get(SESSION_COOKIE)
    if morsel is None:
        return None
    value: str = morsel.value
    return value


def _query_string(scope: Scope) -> str:
    raw: bytes = scope.get("query_string", b"")
    return raw.decode("latin-1")


def _drop_query_token(scope: MutableMapping[str, Any]) -> None:
    """Remove ``token`` from the query string, in the scope the server logs from."""
    pairs = parse_qsl(_query_string(scope), keep_blank_values=True)
    kept = [(key, value) for key, value in pairs if key != _TOKEN_PARAM]
    if len(kept) < len(pairs):
        scope["query_string"] = urlencode(kept).encode("latin-1")


def _local_redirects(send: Send) -> Send:
    """``send`` with every ``Location`` made a path of this app (no open redirect)."""

    async def guarded(message: Message) -> None:
        if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
            message["headers"] = [
                (name, local_path(value.decode("latin-1")).encode("latin-1"))
                if name.lower() == b"location"
                else (name, value)
                for name, value in message.get("headers", [])
            ]
        await send(message)

    return guarded


def _credentials(headers: Headers) -> str | None:
    """The Authorization header's credentials, when it carries a scheme this app reads."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() in ("bearer", "basic") else None


async def _reply_throttled(send: Send, wait_s: int) -> None:
    """429 for an address over its failed-login limit."""
    await _reply(
        send,
        429,
        "too_many_failed_logins",
        f"too many failed logins from this address; retry in {wait_s} s",
        [(b"retry-after", str(wait_s).encode())],
    )


async def _reply(
    send: Send,
    status: int,
    error: str,
    detail: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
