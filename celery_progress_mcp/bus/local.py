"""An in-process bus: synchronous fan-out to callbacks in this process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from ..core.models import ProgressEvent
from .base import EventBus, EventCallback, Unsubscribe

__all__ = ["LocalBus"]

logger = logging.getLogger(__name__)


class LocalBus(EventBus):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: tuple[EventCallback, ...] = ()

    def publish(self, events: Sequence[ProgressEvent]) -> None:
        callbacks = self._callbacks  # an immutable tuple: no lock needed to read
        for event in events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    logger.exception("progress event subscriber failed")

    def subscribe(self, callback: EventCallback) -> Unsubscribe:
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks = tuple(cb for cb in self._callbacks if cb is not callback)

        return unsubscribe

    def after_fork(self) -> None:
        """In a forked child: a new lock (a parent's thread may have held this one).
        The subscribers stay: they are the child's copies."""
        self._lock = threading.Lock()
