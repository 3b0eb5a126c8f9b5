"""The operator's commands on sessions: ``sessions list|show|watch|cancel``, ``stats``, ``cleanup``.

Two ways in, the same commands (:func:`add_session_commands` adds them to
both roots in ``main.py``):

* ``celery-progress-mcp -A MODULE:APP sessions list`` (the package's command);
* ``celery -A proj progress sessions list`` (a Celery sub-command, through
  the ``celery.commands`` entry point).

Without an app, ``CELERY_PROGRESS_STORE_URL`` names a store to read (and
cancel in, without revoking anything).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Console
from rich.pretty import Pretty

from ..celery import CeleryProgressTracker, start_liveness_monitor
from ..celery.integration import integration_of
from ..core.errors import ProgressError
from ..core.models import ProgressSession
from ..core.states import ACTIVE_STATUSES, SessionStatus
from .context import Tracker, context_of, require_tracker
from .terminal import all_finished, print_session_list, render_sessions, watch_sessions

__all__ = ["add_session_commands"]

#: Finished sessions stay in ``watch`` this long, so their end is seen.
WATCH_LINGER_S = 30.0
#: What a command says when it has neither an app nor a store.
NO_TRACKER = "name the Celery app with -A MODULE:APP (or set CELERY_PROGRESS_STORE_URL)"


def _tracker(ctx: click.Context) -> Tracker:
    return require_tracker(ctx, NO_TRACKER)


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@click.group("sessions")
def sessions() -> None:
    """Progress sessions: list, show, watch live, cancel."""


@sessions.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([status.value for status in SessionStatus]),
    help="Only sessions in this state (repeat for several).",
)
@click.option("--active", is_flag=True, help="Only active sessions.")
@click.option("--operation", help="Only this operation (the task's name).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="JSON, one object per session.")
@click.pass_context
def list_command(
    ctx: click.Context,
    statuses: tuple[str, ...],
    active: bool,
    operation: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List sessions, newest first."""
    tracker = _tracker(ctx)
    wanted = list(statuses) or (sorted(ACTIVE_STATUSES) if active else None)
    found = tracker.list_sessions(status=wanted, operation_id=operation, limit=limit)
    if as_json:
        _dump([session.model_dump(mode="json", exclude={"history"}) for session in found])
        return
    print_session_list(found)


@sessions.command("show")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="The whole session as JSON.")
@click.pass_context
def show_command(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """Show one session: state, sub-operations, metadata, history."""
    tracker = _tracker(ctx)
    try:
        session = tracker.get_session(session_id)
    except ProgressError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _dump(session.model_dump(mode="json"))
        return
    console = Console()
    console.print(render_sessions([session], title=f"{session.operation_id}  {session.id}"))
    console.print(Pretty(session.state.model_dump(mode="json")))
    if session.metadata:
        console.print("metadata:", Pretty(session.metadata))
    if session.parent_id:
        console.print(f"parent: {session.parent_id}")
    for snapshot in session.history:
        percentage = getattr(snapshot.state, "percentage", None)
        shown = "" if percentage is None else f" {percentage:.1f}%"
        console.print(
            f"  #{snapshot.index} {snapshot.timestamp:%H:%M:%S} {snapshot.state.status}{shown}"
        )


@sessions.command("watch")
@click.argument("session_ids", nargs=-1)
@click.option("--refresh", default=0.5, show_default=True, type=click.FloatRange(0.05, 60))
@click.option("--limit", default=30, show_default=True, type=click.IntRange(1, 500))
@click.pass_context
def watch_command(
    ctx: click.Context, session_ids: tuple[str, ...], refresh: float, limit: int
) -> None:
    """Live progress bars, sub-operations nested, ETA.

    With SESSION_IDS: those sessions, until they have all ended. Without:
    every active session (and those that just ended), until Ctrl-C. While
    it runs it also sweeps for sessions whose worker died.
    """
    tracker = _tracker(ctx)
    app = context_of(ctx).app
    if app is not None:
        start_liveness_monitor(app)
    select: Callable[[Tracker], list[ProgressSession]]
    until: Callable[[list[ProgressSession]], bool] | None
    if session_ids:

        def select(tracker: Tracker) -> list[ProgressSession]:
            return [tracker.get_session(session_id) for session_id in session_ids]

        until = all_finished
    else:

        def select(tracker: Tracker) -> list[ProgressSession]:
            since = datetime.now(UTC) - timedelta(seconds=WATCH_LINGER_S)
            found = tracker.list_sessions(limit=limit * 4)
            shown = [
                session
                for session in found
                if session.parent_id is None
                and (session.state.status in ACTIVE_STATUSES or session.updated_at >= since)
            ]
            return shown[:limit]

        until = None
    try:
        watch_sessions(tracker, select, until=until, refresh_s=refresh, title="sessions")
    except ProgressError as exc:
        raise click.ClickException(str(exc)) from exc


@sessions.command("cancel")
@click.argument("session_id")
@click.option("--reason", default="cancelled from the command line", show_default=True)
@click.option("--terminate", is_flag=True, help="Also kill the running task (SIGTERM).")
@click.pass_context
def cancel_command(ctx: click.Context, session_id: str, reason: str, terminate: bool) -> None:
    """Cancel a session; a Celery task is revoked too (a running one stops at its next update)."""
    tracker = _tracker(ctx)
    try:
        if terminate and isinstance(tracker, CeleryProgressTracker):
            tracker.cancel_session(session_id, reason, terminate=True)
        else:
            tracker.cancel_session(session_id, reason)
    except ProgressError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"cancelled {session_id}")


@click.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats_command(ctx: click.Context, as_json: bool) -> None:
    """Counts by state and lifetime totals."""
    stats = _tracker(ctx).get_stats()
    if as_json:
        _dump(stats.model_dump(mode="json"))
        return
    click.echo(f"active sessions:  {stats.active_sessions}")
    for status, count in sorted(stats.sessions_by_state.items()):
        click.echo(f"  {status:<13} {count}")
    click.echo(f"created (total):  {stats.total_created}")
    click.echo(f"completed:        {stats.total_completed}")
    click.echo(f"failed:           {stats.total_failed}")
    click.echo(f"cancelled:        {stats.total_cancelled}")
    click.echo(f"average duration: {stats.avg_session_duration_seconds:.2f} s")


@click.command("cleanup")
@click.pass_context
def cleanup_command(ctx: click.Context) -> None:
    """Fail sessions of dead workers and silent ones; remove finished ones past retention."""
    tracker = _tracker(ctx)
    app = context_of(ctx).app
    lost: list[str] = []
    if app is not None:
        integration = integration_of(app)
        if integration is not None:
            lost = integration.liveness.sweep()
    result = tracker.cleanup_expired()
    click.echo(f"worker lost: {len(lost)}")
    click.echo(f"timed out:   {len(result.timed_out)}")
    click.echo(f"removed:     {result.removed}")


def add_session_commands(root: click.Group) -> None:
    """Add ``sessions``, ``stats`` and ``cleanup`` to a click group."""
    root.add_command(sessions)
    root.add_command(stats_command)
    root.add_command(cleanup_command)
