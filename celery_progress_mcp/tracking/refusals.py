"""Refusals of queued writes, reported to listeners outside the tracker's locks.

A write the caller was not kept waiting for (a queued update, a deferred
creation or transition, a write buffered through an outage) can still be
refused by the store when it is written: the session was cancelled by
another process meanwhile, capacity was reached, a session with its id was
created elsewhere. The caller is long gone; a listener added with
``ProgressTracker.add_refusal_listener`` is told instead (the Celery
integration marks the task's session cancelled, so the task stops at its
next update). Refusals are noted where they happen, under the tracker's
locks, and reported by the thread that wrote them once it holds none of
those locks, so a listener may call the tracker.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from ..core.errors import ProgressError

__all__ = ["RefusalListener", "Refusals"]

logger = logging.getLogger(__name__)

#: Called with the session's id and what the store refused its write with.
RefusalListener = Callable[[str, ProgressError], None]


class Refusals:
    """The listeners, and the refusals noted and not yet reported."""

    def __init__(self) -> None:
        self._listeners: tuple[RefusalListener, ...] = ()
        self._noted: deque[tuple[str, ProgressError]] = deque()
        self._lock = threading.Lock()
        #: Held while listeners are told: a report returns once every refusal
        #: noted before it was told (by this thread or another), so ``flush()``
        #: returns with its refusals heard.
        self._reporting = threading.RLock()

    def add_listener(self, listener: RefusalListener) -> Callable[[], None]:
        """Add ``listener``; returns what removes it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(known for known in self._listeners if known is not listener)

        return remove

    def note(self, session_id: str, error: ProgressError) -> None:
        """A queued write of ``session_id`` was refused (any thread, any lock held)."""
        if self._listeners:
            self._noted.append((session_id, error))

    def report(self) -> None:
        """Tell the listeners what was noted; call holding none of the tracker's locks."""
        if not self._listeners:
            return  # nothing is noted
        with self._reporting:
            while self._noted:
                session_id, error = self._noted.popleft()
                for listener in self._listeners:
                    try:
                        listener(session_id, error)
                    except Exception:
                        logger.exception("a refusal listener failed on %s", session_id)

    def after_fork(self) -> None:
        """In a forked child: the listeners stay; the parent's refusals are the parent's."""
        self._lock = threading.Lock()
        self._reporting = threading.RLock()
        self._noted = deque()
