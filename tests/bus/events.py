"""Events for the bus tests, and the store's event log as far as a bus sees it."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from celery_progress_mcp import ProgressEvent, ProgressEventType

__all__ = ["NOW", "EventLog", "progress_event"]

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def progress_event(seq: int) -> ProgressEvent:
    """Event number ``seq`` of one session's progress."""
    return ProgressEvent(
        seq=seq,
        session_id="s",
        operation_id="op",
        event_type=ProgressEventType.PROGRESS_UPDATED,
        timestamp=NOW,
        data={"status": "in_progress", "percentage": float(seq)},
    )


class EventLog:
    """Logged events by seq, read ``page_size`` at a time (a bus's ``backfill``)."""

    def __init__(self, seqs: Iterable[int] = (), *, page_size: int = 100) -> None:
        self._lock = threading.Lock()
        self._page_size = page_size
        self.events: list[ProgressEvent] = []
        self.append(seqs)

    def append(self, seqs: Iterable[int]) -> list[ProgressEvent]:
        """Log events ``seqs``; return them, to publish."""
        events = [progress_event(seq) for seq in seqs]
        with self._lock:
            self.events += events
        return events

    def since(self, after: int) -> list[ProgressEvent]:
        with self._lock:
            return [event for event in self.events if event.seq > after][: self._page_size]

    def last(self) -> int:
        with self._lock:
            return self.events[-1].seq if self.events else 0
