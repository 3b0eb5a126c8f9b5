"""``install(app)``: the one line that turns progress tracking on for a Celery app.

::

    app = Celery("proj", broker=..., backend=...)
    tracker = install(app)   # in the client, the worker, every pool process

Idempotent: a second call returns the same tracker. The same call works in
a client and in a worker; prefork pool processes inherit it and renew its
connections and threads after the fork.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from ..core.config import ProgressConfig
from ..core.errors import ConfigError
from .integration import APP_ATTRIBUTE, Integration, integration_of
from .settings import resolve_config, resolve_settings
from .signals import connect
from .tracker import CeleryProgressTracker

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["install", "uninstall"]

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
        setattr(app, APP_ATTRIBUTE, integration)
        return integration.tracker


def uninstall(app: Celery) -> None:
    """Disconnect the signal handlers and close the tracker (tests, reconfiguration)."""
    from .signals import disconnect

    with _install_lock:
        integration = integration_of(app)
        if integration is None:
            return
        delattr(app, APP_ATTRIBUTE)
        disconnect(integration.connections)
        previous = getattr(integration, "group_result_class", None)
        if previous is not None:
            app.__dict__["GroupResult"] = previous
        integration.close()


def _whole_filesystem_messages(app: Celery) -> None:
    """Use the filesystem transport that writes messages atomically (see ``fstransport``)."""
    conf: Any = app.conf
    broker = conf.broker_url or ""
    if isinstance(broker, str) and broker.startswith("filesystem:") and not conf.broker_transport:
        from .fstransport import TRANSPORT

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
            if id is not None and id in integration.dispatches:
                with contextlib.suppress(Exception):  # never fail a dispatch
                    integration.seal(id)

    GroupResult.__name__ = base.__name__
    GroupResult.__qualname__ = base.__qualname__
    app.__dict__["GroupResult"] = GroupResult
