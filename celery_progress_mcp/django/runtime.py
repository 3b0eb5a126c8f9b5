"""This process's tracking: the Celery app's tracker, and what the views read it with.

:func:`install_tracking` runs when Django starts (``AppConfig.ready``): in
the web process, in ``manage.py`` commands, and in a Celery worker (Celery's
Django fix-up sets Django up before the worker imports the tasks), so that
every process tracks with the configuration of ``settings.CELERY_PROGRESS``.
:func:`runtime` builds, on first use, what the views need: the tracker's
access, celery-progress's reader, and the live hub.

The live hub runs on an event loop of its own, in a daemon thread: under
WSGI (``runserver``, gunicorn's sync workers) each request would otherwise
bring a loop that dies with it, and under ASGI a stream must not wait on a
request's loop either. Streams reach the hub through
:meth:`Runtime.frames`, which works from a thread or from any loop.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import logging
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..celery.install import install
from ..celery.integration import integration_of
from ..celery.tracker import CeleryProgressTracker
from ..core.errors import ConfigError
from ..monitor.compat_reader import CompatReader
from ..monitor.live import LiveHub
from ..monitor.pages import templates
from ..monitor.tracker_access import TrackerAccess
from .conf import AppSettings, app_settings

if TYPE_CHECKING:
    from celery import Celery
    from jinja2 import Environment

__all__ = ["Runtime", "celery_app", "install_tracking", "runtime"]

T = TypeVar("T")

#: Longest wait for the hub's loop to start or to stop, in seconds.
LOOP_WAIT_S = 10.0

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_runtime: Runtime | None = None


def celery_app(settings: AppSettings) -> Celery:
    """The Celery app ``celery_app`` names, else Celery's current app."""
    if settings.celery_app is None:
        from celery import current_app

        app: Celery = current_app._get_current_object()
        return app
    module_name, _, attribute = settings.celery_app.partition(":")
    try:
        module = importlib.import_module(module_name)
        found = getattr(module, attribute or "app")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"CELERY_PROGRESS celery_app {settings.celery_app!r}: {exc}") from exc
    from celery import Celery

    if not isinstance(found, Celery):
        raise ConfigError(f"CELERY_PROGRESS celery_app {settings.celery_app!r} is no Celery app")
    return found


def install_tracking() -> CeleryProgressTracker:
    """Install tracking on the Celery app with ``CELERY_PROGRESS``; the tracker.

    Where ``install(app)`` already ran (the project's ``celery.py`` called
    it), that tracker is kept, with its configuration.
    """
    settings = app_settings()
    app = celery_app(settings)
    existing = integration_of(app)
    if existing is not None:
        logger.info(
            "celery-progress: install(app) ran before Django started; "
            "settings.CELERY_PROGRESS does not configure it"
        )
        return existing.tracker
    conf: Any = app.conf
    for key, value in settings.celery.items():
        if conf.get(key) is None:
            conf[key] = value
    return install(app, settings.config)


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the views share in this process."""

    tracker: CeleryProgressTracker
    access: TrackerAccess
    celery_progress: CompatReader
    hub: LiveHub
    settings: AppSettings
    templates: Environment
    loop: asyncio.AbstractEventLoop

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coroutine`` on the hub's loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def frames(self, stream: AsyncIterator[bytes]) -> Iterator[bytes]:
        """A stream opened on the hub's loop, read from a thread (WSGI)."""
        try:
            while True:
                try:
                    yield self.on_loop(_next(stream)).result()
                except StopAsyncIteration:
                    return
        finally:
            self._close(stream)

    async def aframes(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """A stream opened on the hub's loop, read from another loop (ASGI)."""
        try:
            while True:
                try:
                    yield await asyncio.wrap_future(self.on_loop(_next(stream)))
                except StopAsyncIteration:
                    return
        finally:
            self._close(stream)

    def _close(self, stream: AsyncIterator[bytes]) -> None:
        close = getattr(stream, "aclose", None)
        if close is not None and not self.loop.is_closed():
            self.on_loop(close())


async def _next(stream: AsyncIterator[bytes]) -> bytes:
    return await anext(stream)


def runtime() -> Runtime:
    """This process's :class:`Runtime`, made on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = _build()
        return _runtime


def _build() -> Runtime:
    tracker = install_tracking()
    settings = app_settings()
    access = TrackerAccess(tracker.tracker, cancel=tracker.cancel_session)
    loop = _start_loop()
    hub = LiveHub(access, interval_s=settings.live_interval_s, max_streams=settings.max_streams)
    built = Runtime(
        tracker=tracker,
        access=access,
        celery_progress=CompatReader(access, tracker.app),
        hub=hub,
        settings=settings,
        templates=templates(),
        loop=loop,
    )
    access.hear_other_processes()
    atexit.register(_stop, built)
    return built


def _start_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    threading.Thread(target=run, name="celery-progress-live", daemon=True).start()
    if not started.wait(LOOP_WAIT_S):  # pragma: no cover - a thread that never runs
        raise RuntimeError("the live updates' event loop did not start")
    return loop


def _stop(built: Runtime) -> None:
    built.loop.call_soon_threadsafe(built.hub.close)
    built.loop.call_soon_threadsafe(built.loop.stop)
