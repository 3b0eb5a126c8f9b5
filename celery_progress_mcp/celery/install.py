"""``install(app)``: the one line that turns progress tracking on for a Celery app.

::

    app = Celery("proj", broker=..., backend=...)
    tracker = install(app)   # in the client, the worker, every pool process

Idempotent: a second call returns the same tracker. The same call works in
a client and in a worker; prefork pool processes inherit it and renew its
connections and threads after the fork.

``start_liveness_monitor(app)`` makes this process sweep for the sessions of
dead workers too (see :mod:`.liveness`).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from ..core.config import ProgressConfig
from ..core.errors import ConfigError
from .filesystem_transport import TRANSPORT
from .integration import Integration, integration_of
from .settings import resolve_config, resolve_settings
from .signals import connect, disconnect
from .task import attach_hooks, detach_hooks
from .tracker import CeleryProgressTracker

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["install", "start_liveness_monitor", "uninstall"]

_install_lock = threading.Lock()


def install(app: Celery, config: ProgressConfig | None = None) -> CeleryProgressTracker:
    """Track the progress of the app's ``ProgressTask`` tasks; return the tracker.

    Configuration: ``config``, else the app's ``progress_*`` settings, else
    ``CELERY_PROGRESS_*`` environment variables, else the defaults (see
    :mod:`celery_progress_mcp.celery.settings`, which also says where the
    store is when none is configured). Installing again with a different
    ``config`` raises :class:`ConfigError`.
    """
    with _install_lock:
        existing = integration_of(app)
        if existing is not None:
            if config is not None and config != existing.config:
                raise ConfigError(
                    "install(app) was already called with another configuration; "
                    "call uninstall(app) first"
                )
            return existing.tracker
        conf: Any = app.conf
        resolved = resolve_config(config, conf, app_name=getattr(app, "main", None))
        settings = resolve_settings(conf)
        integration = Integration(app, resolved, settings)
        integration.connections = connect(integration)
        _seal_group_results(app, integration)
        _whole_filesystem_messages(app)
        attach_hooks(app, integration)
        return integration.tracker


def uninstall(app: Celery) -> None:
    """Disconnect the signal handlers and close the tracker (tests, reconfiguration)."""
    with _install_lock:
        integration = integration_of(app)
        if integration is None:
            return
        detach_hooks(app)
        disconnect(integration.connections)
        previous = integration.group_result_class
        if previous is not None:
            app.__dict__["GroupResult"] = previous
        integration.close()


def start_liveness_monitor(app: Celery) -> None:
    """Sweep for dead workers' sessions from this process too (a monitor, a dashboard)."""
    install(app)
    integration = integration_of(app)
    assert integration is not None
    integration.liveness.start()


def _whole_filesystem_messages(app: Celery) -> None:
    """Use the filesystem transport whose messages appear whole (:mod:`.filesystem_transport`)."""
    conf: Any = app.conf
    broker = conf.broker_url or ""
    if isinstance(broker, str) and broker.startswith("filesystem:") and not conf.broker_transport:
        conf.broker_transport = TRANSPORT


def _seal_group_results(app: Celery, integration: Integration) -> None:
    """Seal a group's session when ``group.apply_async`` builds its ``GroupResult``.

    That is the moment its dispatch has finished, so every member is known
    (see :mod:`.canvas`). The app's ``GroupResult`` class is replaced by a
    subclass that tells the integration; nothing else changes.
    """
    base = app.GroupResult
    integration.group_result_class = base

    class GroupResult(base):  # type: ignore[misc,valid-type]
        def __init__(self, id: Any = None, results: Any = None, **options: Any) -> None:
            super().__init__(id, results, **options)
            dispatcher = integration.dispatcher
            if id is not None and id in dispatcher.dispatches:
                with contextlib.suppress(Exception):  # never fail a dispatch
                    dispatcher.seal(id)

    GroupResult.__name__ = base.__name__
    GroupResult.__qualname__ = base.__qualname__
    app.__dict__["GroupResult"] = GroupResult
