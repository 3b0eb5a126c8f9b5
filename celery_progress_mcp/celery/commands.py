"""The operator's commands: ``sessions list|show|watch|cancel``, ``stats``, ``cleanup``.

Two ways in, the same commands:

* ``celery-progress-mcp -A MODULE:APP sessions list`` (the package's command;
  ``cli.py`` resolves ``-A`` into a :class:`CommandContext`);
* ``celery -A proj progress sessions list`` (a Celery sub-command, through
  the ``celery.commands`` entry point: :data:`progress`).

Without an app, ``CELERY_PROGRESS_STORE_URL`` names a store to read (and
cancel in, without revoking anything).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ..core.config import ProgressConfig
from ..core.errors import ProgressError
from ..core.models import ProgressSession
from ..core.states import ACTIVE_STATUSES, TERMINAL_STATUSES, SessionStatus
from ..tracking.tracker import ProgressTracker

__all__ = ["CommandContext", "progress", "register"]

#: Finished sessions stay in ``watch`` this long, so their end is seen.
WATCH_LINGER_S = 30.0


class CommandContext:
    """What the commands share: the Celery app (if any) and its tracker, made on first use."""

    def __init__(self, app: Any | None = None, tracker: ProgressTracker | None = None) -> None:
        self.app = app
        self._tracker = tracker
        self._owned = False

    @classmethod
    def from_name(cls, app_name: str) -> CommandContext:
        """Import the app named ``MODULE:APP`` (or ``MODULE``, as Celery's ``-A`` does)."""
        from celery.app.utils import find_app

        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            app = find_app(app_name)
        except Exception as exc:
            raise click.UsageError(f"cannot load the Celery app {app_name!r}: {exc}") from exc
        return cls(app)

    def tracker(self) -> ProgressTracker | None:
        """The app's tracker, else one over ``CELERY_PROGRESS_STORE_URL``, else None."""
        if self._tracker is None:
            if self.app is not None:
                from .install import install

                self._tracker = install(self.app)
            elif os.environ.get("CELERY_PROGRESS_STORE_URL"):
                self._tracker = ProgressTracker(ProgressConfig.from_env())
                self._owned = True
        return self._tracker

    def cancel(self, session_id: str, reason: str) -> None:
        """Cancel a session (and, with a Celery app, revoke its task)."""
        tracker = self.tracker()
        if tracker is not None:
            tracker.cancel_session(session_id, reason)

    def close(self) -> None:
        if self._tracker is not None:
            if self._owned or self.app is None:
                self._tracker.close()
            else:
                self._tracker.flush()


def _context(ctx: click.Context) -> CommandContext:
    obj = ctx.find_object(CommandContext)
    if obj is None:
        obj = CommandContext()
        ctx.obj = obj
    return obj


def _tracker(ctx: click.Context) -> ProgressTracker:
    try:
        tracker = _context(ctx).tracker()
    except ProgressError as exc:
        raise click.ClickException(str(exc)) from exc
    if tracker is None:
        raise click.UsageError(
            "name the Celery app with -A MODULE:APP (or set CELERY_PROGRESS_STORE_URL)"
        )
    return tracker


def _age(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


# -- the commands --------------------------------------------------------------------


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
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, box=None)
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("operation", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("%", justify="right", no_wrap=True, min_width=5)
    table.add_column("step / outcome", overflow="ellipsis", no_wrap=True, ratio=1)
    table.add_column("updated", no_wrap=True, min_width=7)
    for session in found:
        table.add_row(
            session.id,
            session.operation_id.rsplit(".", 1)[-1],
            session.state.status,
            f"{session.percentage:.1f}",
            _outcome(session),
            _age(session.updated_at),
        )
    Console().print(table)


def _outcome(session: ProgressSession) -> str:
    state: Any = session.state
    for name in ("current_step", "result_summary", "error_message", "reason"):
        value = getattr(state, name, None)
        if value:
            return str(value)[:80]
    return ""


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
    from rich.console import Console
    from rich.pretty import Pretty

    from .console import render_sessions

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
    from .console import watch_sessions

    context = _context(ctx)
    tracker = _tracker(ctx)
    if context.app is not None:
        from .integration import integration_of

        integration = integration_of(context.app)
        if integration is not None:
            integration.start_liveness()
    select: Callable[[ProgressTracker], list[ProgressSession]]
    if session_ids:

        def select(tracker: ProgressTracker) -> list[ProgressSession]:
            return [tracker.get_session(session_id) for session_id in session_ids]

        def until(found: list[ProgressSession]) -> bool:
            return all(session.state.status in TERMINAL_STATUSES for session in found)

    else:

        def select(tracker: ProgressTracker) -> list[ProgressSession]:
            since = datetime.now(UTC) - timedelta(seconds=WATCH_LINGER_S)
            found = tracker.list_sessions(limit=limit * 4)
            shown = [
                session
                for session in found
                if session.parent_id is None
                and (session.state.status in ACTIVE_STATUSES or session.updated_at >= since)
            ]
            return shown[:limit]

        until = None  # type: ignore[assignment]
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
        if terminate and hasattr(tracker, "revoke"):
            tracker.cancel_session(session_id, reason, terminate=True)  # type: ignore[call-arg]
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
    context = _context(ctx)
    tracker = _tracker(ctx)
    lost: list[str] = []
    if context.app is not None:
        from .integration import integration_of
        from .liveness import sweep

        integration = integration_of(context.app)
        if integration is not None:
            lost = sweep(integration)
    result = tracker.cleanup_expired()
    click.echo(f"worker lost: {len(lost)}")
    click.echo(f"timed out:   {len(result.timed_out)}")
    click.echo(f"removed:     {result.removed}")


def register(root: click.Group) -> None:
    """Add ``sessions``, ``stats`` and ``cleanup`` to a click group."""
    root.add_command(sessions)
    root.add_command(stats_command)
    root.add_command(cleanup_command)


@click.group("progress")
@click.pass_context
def progress(ctx: click.Context) -> None:
    """Progress sessions of this app's tracked tasks (celery-progress-mcp)."""
    celery_context = ctx.obj
    app = getattr(celery_context, "app", None)
    context = CommandContext(app)
    ctx.obj = context
    ctx.call_on_close(context.close)


register(progress)
