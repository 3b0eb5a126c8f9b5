"""Fork safety for the whole package: one ``os.register_at_fork`` hook.

A forked child (a prefork pool process, or any other ``fork``) inherits the
parent's memory but none of its threads, and locks that a parent's thread
held at the moment of the fork stay held for ever. Every object that keeps
threads, locks or connections registers here with :func:`renew_after_fork`;
in the child, before anything else runs, each gets its ``after_fork()``
called, in registration order. A tracker renews the store and the bus it
holds itself (``Store.after_fork``, ``EventBus.after_fork``): they need not
register.

Objects are held weakly: registering never keeps one alive. An object is
renewed only in a process other than the one it was last renewed in, so one
made in the child by an earlier hook is left alone.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import weakref
from typing import Protocol

__all__ = ["Renewable", "renew_after_fork"]

logger = logging.getLogger(__name__)


class Renewable(Protocol):
    """What registers: ``after_fork()`` leaves the object usable in the child."""

    def after_fork(self) -> None: ...


class _Entry:
    __slots__ = ("pid", "ref")

    def __init__(self, ref: weakref.ref[Renewable], pid: int) -> None:
        self.ref = ref
        #: The process the object belongs to (it was made or renewed there).
        self.pid = pid


#: Registered objects by registration number (a dict keeps that order).
_entries: dict[int, _Entry] = {}
_numbers = itertools.count()
_lock = threading.Lock()
_hook_registered = False


def renew_after_fork(obj: Renewable) -> None:
    """Call ``obj.after_fork()`` in every forked child of this process (idempotent)."""
    global _hook_registered
    with _lock:
        if any(entry.ref() is obj for entry in _entries.values()):
            return
        number = next(_numbers)
        ref = weakref.ref(obj, lambda _: _entries.pop(number, None))
        _entries[number] = _Entry(ref, os.getpid())
        if not _hook_registered:
            os.register_at_fork(after_in_child=_renew_in_child)
            _hook_registered = True


def _renew_in_child() -> None:
    global _lock
    # A parent's thread may have held the lock at the fork: it is never released.
    _lock = threading.Lock()
    pid = os.getpid()
    for entry in list(_entries.values()):
        obj = entry.ref()
        if obj is None or entry.pid == pid:
            continue
        entry.pid = pid
        try:
            obj.after_fork()
        except Exception:
            logger.exception("%s could not be renewed after fork", type(obj).__name__)
