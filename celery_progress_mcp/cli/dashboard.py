"""``celery-progress-mcp -A MODULE:APP dashboard``: serve the dashboard with uvicorn.

The tracker comes from ``--store-url`` (a store without a Celery app), else
from the Celery app named by ``-A`` (here or on the group; see
:mod:`.context`), whose ``cancel_session`` also revokes the task.
Binding anything but a loopback address requires a token or basic auth; a
token is at least 16 characters without whitespace (refused at startup
otherwise). ``--max-streams`` caps the live SSE streams open at once.
``--cors-origin`` lets pages on other origins read ``/celery-progress/...``
and the JSON API's GETs (never the actions; see ``web.cors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ..core.errors import ConfigError
from ..core.hosts import is_loopback
from .context import Tracker, context_of, require_tracker
from .serving import check_token, refuse_open_bind

if TYPE_CHECKING:
    from ..web import ActionHook

__all__ = ["BASIC_AUTH_ENV", "DEFAULT_PORT", "TOKEN_ENV", "dashboard_command", "serve"]

#: The dashboard's default TCP port.
DEFAULT_PORT = 5566
#: Seconds open connections get to finish when the server stops.
SHUTDOWN_GRACE_S = 2
#: Environment variable read for ``--token`` (keeps the token out of ``ps``).
TOKEN_ENV = "CELERY_PROGRESS_DASHBOARD_TOKEN"
#: Environment variable read for ``--basic-auth`` (``USER:PASSWORD``).
BASIC_AUTH_ENV = "CELERY_PROGRESS_DASHBOARD_BASIC_AUTH"


def serve(
    tracker: Tracker,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    cancel: ActionHook | None = None,
    cors_origins: Sequence[str] = (),
    max_streams: int | None = None,
    log_level: str = "info",
) -> None:
    """Run the dashboard until interrupted. Refuses a non-loopback host without auth."""
    import uvicorn

    from ..monitor.live import DEFAULT_MAX_STREAMS
    from ..web.app import create_app

    if not is_loopback(host) and token is None and basic_auth is None:
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without authentication: "
            f"pass --token (or set {TOKEN_ENV}) or --basic-auth, or bind 127.0.0.1"
        )
    allowed_hosts: list[str] | None = None
    if token is None and basic_auth is None:
        allowed_hosts = ["localhost", "127.0.0.1", "::1", "[::1]", host]
    # A Celery tracker brings its app: cancelling revokes, /celery-progress/ reads its backend.
    app = create_app(
        tracker,
        token=token,
        basic_auth=basic_auth,
        cancel=cancel,
        allowed_hosts=allowed_hosts,
        cors_origins=cors_origins,
        max_streams=DEFAULT_MAX_STREAMS if max_streams is None else max_streams,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        # Open SSE streams never end by themselves: without a bound, stopping
        # would wait for every browser tab to close.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


@click.command("dashboard")
@click.option("-A", "--app", "app_name", help="The Celery app, MODULE:APP.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar=TOKEN_ENV, help=f"Require this token (or set {TOKEN_ENV}).")
@click.option(
    "--basic-auth",
    envvar=BASIC_AUTH_ENV,
    metavar="USER:PASSWORD",
    help=f"Require HTTP basic auth (or set {BASIC_AUTH_ENV}).",
)
@click.option("--store-url", help="Serve this store directly, without a Celery app.")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let pages on ORIGIN (scheme://host[:port]) read /celery-progress/ and the API's "
    "GETs; repeatable. None by default.",
)
@click.option(
    "--max-streams",
    type=click.IntRange(min=1),
    default=None,
    help="Live (SSE) streams open at once at most; one more is answered 503. [default: 100]",
)
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
def dashboard_command(
    ctx: click.Context,
    app_name: str | None,
    host: str,
    port: int,
    token: str | None,
    basic_auth: str | None,
    store_url: str | None,
    cors_origins: tuple[str, ...],
    max_streams: int | None,
    log_level: str,
) -> None:
    """Serve the live web dashboard, JSON API, SSE stream and /metrics."""
    basic: tuple[str, str] | None = None
    if basic_auth:
        user, sep, password = basic_auth.partition(":")
        if not sep or not user or not password:
            raise click.BadParameter("expected USER:PASSWORD", param_hint="--basic-auth")
        basic = (user, password)
    check_token(token)
    # The web extra, imported once it is needed.
    from ..web.cors import checked_origins
    from ..web.security import token_problem

    problem = None if token is None else token_problem(token)
    if problem is not None:
        raise click.BadParameter(f"{problem} (or set {TOKEN_ENV})", param_hint="--token")
    try:
        checked_origins(cors_origins)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--cors-origin") from None
    refuse_open_bind(
        host,
        authenticated=token is not None or basic is not None,
        without="authentication",
        remedy=f"pass --token (or set {TOKEN_ENV}) or --basic-auth",
    )
    context = context_of(ctx, None if store_url else app_name)
    if store_url:
        context.use_store(store_url)
    tracker = require_tracker(ctx, "name the Celery app with -A MODULE:APP, or pass --store-url")
    click.echo(f"dashboard on http://{host}:{port}/", err=True)
    serve(
        tracker,
        host=host,
        port=port,
        token=token,
        basic_auth=basic,
        cors_origins=cors_origins,
        max_streams=max_streams,
        log_level=log_level,
    )
