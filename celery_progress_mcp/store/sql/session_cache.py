"""Sessions as this process last committed them, keyed by revision.

A writer locks the session row and reads its ``revision``; if it matches
the copy kept here, nobody else wrote in between and the row need not be
read and decoded again. Any write elsewhere replaces the revision, so a
stale copy is never used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ...core.models import ProgressSession

__all__ = ["DEFAULT_CACHED_SESSIONS", "CachedSession", "SessionCache"]

#: Sessions a store keeps decoded; active sessions are rarely more.
DEFAULT_CACHED_SESSIONS = 4096


@dataclass(frozen=True, slots=True)
class CachedSession:
    session: ProgressSession
    revision: int
    snapshot_count: int


class SessionCache:
    def __init__(self, capacity: int = DEFAULT_CACHED_SESSIONS) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CachedSession] = OrderedDict()

    def get(self, session_id: str, revision: int) -> CachedSession | None:
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None or entry.revision != revision:
                return None
            self._entries.move_to_end(session_id)
            return entry

    def put(self, entry: CachedSession) -> None:
        with self._lock:
            self._entries[entry.session.id] = entry
            self._entries.move_to_end(entry.session.id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def discard(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def after_fork(self) -> None:
        """In a forked child: a new lock (a parent's thread may have held this one)
        and no entries (they are what the parent last wrote)."""
        self._lock = threading.Lock()
        self._entries = OrderedDict()
