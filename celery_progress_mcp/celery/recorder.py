"""``ProgressRecorder``: celery-progress's recorder, as a one-line import change.

::

    # from celery_progress.backend import ProgressRecorder
    from celery_progress_mcp.celery import ProgressRecorder

    @progress_task(app)
    def work(self, items):
        recorder = ProgressRecorder(self)
        for i, item in enumerate(items, 1):
            handle(item)
            recorder.set_progress(i, len(items), description="working")

It calls ``task.update_state`` with celery-progress's ``PROGRESS`` meta, as
celery-progress does; on a tracked task that becomes a coalesced progress
update (and a result-backend write at most once per window), so the same
calls cost microseconds instead of a synchronous backend write each.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .translate import PROGRESS_STATE

__all__ = ["ProgressRecorder"]


class ProgressRecorder:
    """``set_progress(current, total, description)`` and ``increment_progress(by, description)``."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.current: float = 0
        self.total: float = 0

    def set_progress(
        self, current: float, total: float, description: str = ""
    ) -> tuple[str, dict[str, Any]]:
        """Report ``current`` of ``total``; returns the state and meta, as celery-progress."""
        self.current = current
        self.total = total
        percent = 0.0
        if total > 0:
            percent = float(round(Decimal(current) / Decimal(total) * Decimal(100), 2))
        meta = {
            "pending": False,
            "current": current,
            "total": total,
            "percent": percent,
            "description": description,
        }
        self.task.update_state(state=PROGRESS_STATE, meta=meta)
        return PROGRESS_STATE, meta

    def increment_progress(
        self, by: float = 1, description: str = ""
    ) -> tuple[str, dict[str, Any]]:
        """Advance by ``by`` towards the total of the last ``set_progress``."""
        return self.set_progress(self.current + by, self.total, description)
