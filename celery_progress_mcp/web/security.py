"""Authentication, CSRF and host checks, as one ASGI middleware.

* Authentication, when a token or a basic-auth pair is configured: an
  ``Authorization: Bearer <token>`` header, HTTP basic auth, or the session
  cookie that the login form (or ``?token=`` once, on a GET) sets. The cookie
  holds an HMAC of the token, never the token itself; every comparison uses
  :func:`hmac.compare_digest`.
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
from collections.abc import Collection
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "CSRF_HEADER",
    "LOOPBACK_HOSTS",
    "SESSION_COOKIE",
    "AuthSettings",
    "SecurityMiddleware",
    "cookie_value",
    "route_path",
]

#: The header every state-changing request must carry (any non-empty value).
CSRF_HEADER = "x-requested-with"
#: The cookie that keeps a browser logged in.
SESSION_COOKIE = "celery_progress_session"
#: Served without authentication only under these names.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: Lifetime of the login cookie, in seconds.
COOKIE_MAX_AGE_S = 12 * 3600
#: Paths reachable without logging in (the login form and its assets).
_PUBLIC_PREFIXES = ("/login", "/static/")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths answered with a 401 (machines); other paths send a browser to the login form.
_MACHINE_PREFIXES = ("/api/", "/metrics", "/celery-progress/")


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


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: AuthSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
        if self._authenticated(headers):
            await self.app(scope, receive, send)
            return
        token = _query_token(scope)
        if token is not None and method == "GET" and self.settings.token_ok(token):
            await self._login_redirect(scope, send)
            return
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

    async def _login_redirect(self, scope: Scope, send: Send) -> None:
        """``?token=`` once: set the cookie and send the browser to the URL without it."""
        query = [(k, v) for k, v in parse_qsl(_query_string(scope)) if k != "token"]
        location = scope.get("root_path", "") + route_path(scope)
        if query:
            location += "?" + urlencode(query)
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", session_cookie_header(self.settings, scope).encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, scope: Scope, send: Send, path: str) -> None:
        if path.startswith(_MACHINE_PREFIXES) or path == "/metrics":
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


def _query_token(scope: Scope) -> str | None:
    for key, value in parse_qsl(_query_string(scope)):
        if key == "token":
            return value
    return None


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
