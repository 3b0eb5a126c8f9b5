"""Closing at interpreter exit: one ``atexit`` hook for the whole package.

What a tracker accepted and has not written yet (a queued creation, a
deferred transition, a coalesced update) is written by ``close()``. A
process that exits without calling it (a script, a web process, a Celery
client after ``delay()``) would lose it; so every tracker registers here
with :func:`close_at_exit`, and at exit each one still alive is closed,
newest first, each within its own bounded wait (``tracker.CLOSE_WAIT_S``).
Objects are held weakly: registering never keeps one alive. A process that
ends with ``os._exit`` (a forked pool process) runs no ``atexit`` hook:
whoever runs it closes the tracker first (the Celery integration, on
``worker_process_shutdown``).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import weakref
from typing import Protocol

__all__ = ["Closable", "close_at_exit"]

logger = logging.getLogger(__name__)


class Closable(Protocol):
    def close(self) -> None: ...


#: Registered objects by registration number (a dict keeps that order).
_entries: dict[int, weakref.ref[Closable]] = {}
_numbers = itertools.count()
_lock = threading.Lock()
_hook_registered = False


def close_at_exit(obj: Closable) -> None:
    """Call ``obj.close()`` at interpreter exit if it is still alive then (idempotent)."""
    global _hook_registered
    with _lock:
        if any(ref() is obj for ref in _entries.values()):
            return
        number = next(_numbers)
        _entries[number] = weakref.ref(obj, lambda _: _entries.pop(number, None))
        if not _hook_registered:
            atexit.register(_close_all)
            _hook_registered = True


def _close_all() -> None:
    with _lock:
        refs = list(_entries.values())
        _entries.clear()
    for ref in reversed(refs):
        obj = ref()
        if obj is None:
            continue
        try:
            obj.close()
        except Exception:
            logger.exception("%s could not be closed at exit", type(obj).__name__)
