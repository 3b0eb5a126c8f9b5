"""What every command works with: the Celery app ``-A`` names and its tracker.

One resolver for every way in (``celery-progress-mcp -A ...``, a command's
own ``-A``, ``celery -A proj progress ...``): :func:`resolve_app` finds the
app as ``celery -A`` does (Celery's ``find_app``) and imports the modules a
worker of that app imports (``include``, ``imports``, autodiscovery), so a
command sees every task the worker runs. The tracker is the app's
(:func:`celery_progress_mcp.celery.install`: cancelling revokes the task too),
else one over a store URL, made on first use and closed when the command
ends.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TypeAlias

import click

from ..celery import install
from ..core.config import ProgressConfig
from ..core.errors import ProgressError
from ..tracking.tracker import ProgressTracker

if TYPE_CHECKING:
    from celery import Celery

    from ..celery.tracker import CeleryProgressTracker

__all__ = [
    "STORE_URL_ENV",
    "CommandContext",
    "Tracker",
    "context_of",
    "open_context",
    "require_tracker",
    "resolve_app",
]

#: The environment variable ``ProgressConfig.from_env`` reads the store URL from.
STORE_URL_ENV = "CELERY_PROGRESS_STORE_URL"

#: A tracker as the commands use it: a Celery app's, or a bare one over a store.
Tracker: TypeAlias = "ProgressTracker | CeleryProgressTracker"


def resolve_app(app: Celery | str) -> Celery:
    """The Celery app ``-A`` names, found and loaded as a ``celery -A`` worker does.

    ``app`` is the name given to ``-A`` (``proj``, ``proj.celery``,
    ``proj.celery:app``) or an app Celery's own command line already found.
    """
    from celery.app.utils import find_app

    name = app if isinstance(app, str) else app.main
    # Celery imports the app's module from the working directory only while
    # it looks; modules imported later (a task's, by name) must find it too.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Celery = find_app(app) if isinstance(app, str) else app
        found.loader.import_default_modules()
    except Exception as exc:
        raise click.UsageError(f"cannot load the Celery app {name!r}: {exc}") from exc
    return found


class CommandContext:
    """The Celery app (if any) and its tracker, made on first use."""

    def __init__(self, app: Celery | None = None) -> None:
        self.app = app
        self._tracker: Tracker | None = None
        # A tracker made here over a store URL is closed here; an app's
        # belongs to the app's integration and is only flushed.
        self._owned = False

    def use_app(self, app: Celery | str) -> None:
        """Work with this app instead (a command's own ``-A`` over the group's)."""
        self.app = resolve_app(app)
        self._tracker = None

    def use_store(self, store_url: str) -> None:
        """Work with this store directly, without a Celery app."""
        self._tracker = ProgressTracker(ProgressConfig(store_url=store_url))
        self._owned = True

    def tracker(self) -> Tracker | None:
        """The app's tracker, else one over ``CELERY_PROGRESS_STORE_URL``, else None."""
        if self._tracker is None:
            if self.app is not None:
                self._tracker = install(self.app)
            elif os.environ.get(STORE_URL_ENV):
                self._tracker = ProgressTracker(ProgressConfig.from_env())
                self._owned = True
        return self._tracker

    def close(self) -> None:
        if self._tracker is None:
            return
        if self._owned:
            self._tracker.close()
        else:
            self._tracker.flush()


def open_context(ctx: click.Context, app: Celery | str | None = None) -> CommandContext:
    """Give the commands under ``ctx`` a context (resolving ``app``), closed when they end."""
    context = CommandContext(None if app is None else resolve_app(app))
    ctx.obj = context
    ctx.call_on_close(context.close)
    return context


def context_of(ctx: click.Context, app: str | None = None) -> CommandContext:
    """The context a group opened (or a new one), on ``app`` when a command names its own."""
    context = ctx.find_object(CommandContext)
    if context is None:
        return open_context(ctx, app)
    if app is not None:
        context.use_app(app)
    return context


def require_tracker(ctx: click.Context, missing: str) -> Tracker:
    """The context's tracker; a usage error saying ``missing`` when there is none."""
    try:
        tracker = context_of(ctx).tracker()
    except ProgressError as exc:
        raise click.ClickException(str(exc)) from exc
    if tracker is None:
        raise click.UsageError(missing)
    return tracker


def celery_app_of(celery_context: Any) -> Celery:
    """The app of Celery's own command-line context (``celery -A proj ...``)."""
    from celery.bin.base import CLIContext

    if not isinstance(celery_context, CLIContext):
        raise click.UsageError("run this as a Celery sub-command: celery -A proj progress ...")
    app: Celery = celery_context.app
    return app
