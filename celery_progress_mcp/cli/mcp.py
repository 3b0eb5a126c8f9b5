"""``celery-progress-mcp -A MODULE:APP mcp``: serve allowlisted tasks over MCP.

Also runs on its own as ``python -m celery_progress_mcp.mcp -A MODULE:APP``
(the form an agent host's configuration can always use). ``--tool`` names
each Celery task to expose; nothing else is. The app is the one ``-A`` names
(here or on the group; see :mod:`.context`), with its task modules imported
as a worker imports them, and the tracker is the app's.
"""

from __future__ import annotations

import click

from ..celery import CeleryProgressTracker
from ..core.errors import ProgressError
from ..mcp import (
    DEFAULT_HOST,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_PORT,
    DEFAULT_SESSION_IDLE_TIMEOUT_S,
)
from .context import context_of, require_tracker
from .serving import check_token, refuse_open_bind

__all__ = ["TOKEN_ENV", "mcp_command"]

#: Environment variable read for ``--token`` (keeps the token out of ``ps``).
TOKEN_ENV = "CELERY_PROGRESS_MCP_TOKEN"
#: What the command says without an app: its tools are the app's tasks.
NO_APP = "name the Celery app with -A MODULE:APP"


@click.command("mcp")
@click.option("-A", "--app", "app_name", help="The Celery app, MODULE:APP.")
@click.option("--tool", "tools", multiple=True, required=True, help="A task to expose (repeat).")
@click.option(
    "--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="HTTP: address to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar=TOKEN_ENV, help=f"HTTP: required bearer token [env: {TOKEN_ENV}].")
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    metavar="SCHEME://HOST[:PORT]",
    help="HTTP: a browser origin allowed besides this server's own (repeat).",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    help="HTTP: a name this server is reached by, besides its address and loopback (repeat).",
)
@click.option(
    "--max-sessions",
    default=DEFAULT_MAX_SESSIONS,
    show_default=True,
    type=click.IntRange(min=1),
    help="HTTP: MCP sessions open at once; past it a new one is refused (503).",
)
@click.option(
    "--session-idle-timeout",
    default=DEFAULT_SESSION_IDLE_TIMEOUT_S,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="HTTP: seconds without a request before a session is closed.",
)
@click.option(
    "--pickup-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a task may wait for a worker before the call fails.",
)
@click.option(
    "--terminate/--cooperative",
    default=False,
    show_default=True,
    help="Cancel by terminating the worker process (SIGTERM) or cooperatively.",
)
@click.option("--no-lookaround", is_flag=True, help="Do not expose the look-around tools.")
@click.pass_context
def mcp_command(
    ctx: click.Context,
    app_name: str | None,
    tools: tuple[str, ...],
    transport: str,
    host: str,
    port: int,
    token: str | None,
    allow_origins: tuple[str, ...],
    allow_hosts: tuple[str, ...],
    max_sessions: int,
    session_idle_timeout: float,
    pickup_timeout: float,
    terminate: bool,
    no_lookaround: bool,
) -> None:
    """Serve the named Celery tasks as MCP tools, with progress and cancellation."""
    import anyio

    from ..mcp.asgi import serve_http
    from ..mcp.http_guards import normalize_origin
    from ..mcp.runner import RunOptions
    from ..mcp.server import ServerOptions, build_server

    check_token(token)
    if transport == "http":
        refuse_open_bind(
            host,
            authenticated=bool(token),
            without="a bearer token",
            remedy=f"pass --token (or set {TOKEN_ENV})",
        )
    for origin in allow_origins:
        try:
            normalize_origin(origin)
        except ProgressError as exc:
            raise click.BadParameter(str(exc), param_hint="--allow-origin") from exc
    app = context_of(ctx, app_name).app
    if app is None:
        raise click.UsageError(NO_APP)
    tracker = require_tracker(ctx, NO_APP)
    if isinstance(tracker, CeleryProgressTracker):
        tracker = tracker.tracker  # the server's canceller revokes the task itself
    options = ServerOptions(
        run=RunOptions(pickup_timeout_s=pickup_timeout, terminate_on_cancel=terminate),
        lookaround_tools=not no_lookaround,
    )
    try:
        server = build_server(app, list(tools), tracker=tracker, options=options)
    except ProgressError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        if transport == "stdio":
            anyio.run(server.run_stdio_async)
        else:
            click.echo(f"MCP on http://{host}:{port}/mcp", err=True)
            try:
                serve_http(
                    server,
                    host=host,
                    port=port,
                    token=token,
                    allow_origins=allow_origins,
                    allow_hosts=allow_hosts,
                    max_sessions=max_sessions,
                    session_idle_timeout_s=session_idle_timeout,
                )
            except ProgressError as exc:  # e.g. an idle timeout of nan or inf
                raise click.ClickException(str(exc)) from exc
    finally:
        tracker.close()
