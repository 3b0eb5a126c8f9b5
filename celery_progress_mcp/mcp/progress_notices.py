"""From a session's events to MCP progress notifications (2025-06-18 basic/utilities/progress).

:class:`ProgressMapper` turns events into notices whose ``progress`` strictly
increases (a value at or below the last one sent is never produced, even
when the task's percentage goes down), with ``total`` = 100 for percentages
or the task's ``total_steps`` where it counts steps (the unit is fixed by
the first notice, so values stay comparable), and the current step
(plus the active sub-operation at Verbose granularity) as ``message``.
:class:`Pacer` rate-limits them to one per ``update_interval_ms``, keeping
the latest one for the end of the window. Both are pure: no I/O, no clock
of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.models import ProgressEvent, ProgressEventType

__all__ = ["Pacer", "ProgressMapper", "ProgressNotice"]

E = ProgressEventType

#: Events after which a session has ended.
TERMINAL_EVENTS = frozenset(
    {E.SESSION_COMPLETED, E.SESSION_FAILED, E.SESSION_CANCELLED, E.SESSION_EXPIRED}
)
_SUB_OPERATION_EVENTS = frozenset(
    {
        E.SUB_OPERATION_ADDED,
        E.SUB_OPERATION_STARTED,
        E.SUB_OPERATION_UPDATED,
        E.SUB_OPERATION_COMPLETED,
        E.SUB_OPERATION_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class ProgressNotice:
    """The parameters of one ``notifications/progress``, less the token."""

    progress: float
    total: float | None
    message: str | None


class ProgressMapper:
    """Maps one session's events to notices with strictly increasing progress."""

    def __init__(self, *, with_sub_operations: bool = False) -> None:
        self._with_sub_operations = with_sub_operations
        self._last_progress: float | None = None
        self._step: str | None = None
        self._sub_operation: str | None = None
        self._total_steps: int | None = None
        self._total: float | None = None

    @property
    def last_progress(self) -> float | None:
        return self._last_progress

    def observe(self, event: ProgressEvent) -> ProgressNotice | None:
        """The notice this event calls for, or None (nothing new, or not an increase)."""
        data = event.data
        if event.event_type in _SUB_OPERATION_EVENTS:
            self._note_sub_operation(data)
        if event.event_type in (E.SESSION_FAILED, E.SESSION_CANCELLED, E.SESSION_EXPIRED):
            return None
        if data.get("status") == "initializing":
            return None  # queued: nothing has progressed yet
        if "current_step" in data:
            self._step = data["current_step"] or None
        total_steps = data.get("total_steps")
        if isinstance(total_steps, int) and total_steps > 0:
            self._total_steps = total_steps
        percentage = data.get("percentage")
        if event.event_type is E.SESSION_COMPLETED:
            percentage = 100.0
        if not isinstance(percentage, int | float):
            return None
        if self._total is None and not self._total_steps and percentage == 0:
            return None  # a bare start: wait to learn whether the task counts steps
        if self._total is None:  # the unit is chosen once, so progress stays comparable
            self._total = float(self._total_steps) if self._total_steps else 100.0
        total = self._total
        progress = float(percentage) if total == 100.0 else float(percentage) * total / 100.0
        if self._last_progress is not None and progress <= self._last_progress:
            return None
        self._last_progress = progress
        return ProgressNotice(progress=progress, total=total, message=self._message())

    def _note_sub_operation(self, data: dict[str, object]) -> None:
        name = data.get("sub_operation_name") or data.get("sub_operation_id")
        state = data.get("sub_operation_state")
        if state == "active" and isinstance(name, str):
            self._sub_operation = name
        elif state not in ("pending", "active") and name == self._sub_operation:
            self._sub_operation = None

    def _message(self) -> str | None:
        parts = [self._step] if self._step else []
        if self._with_sub_operations and self._sub_operation:
            parts.append(self._sub_operation)
        return " / ".join(parts) if parts else None


class Pacer:
    """At most one notice per ``interval_s``; the latest one waits for its turn.

    ``offer`` returns the notice to send now, or None when it must wait;
    ``due`` returns the waiting notice once its time has come; ``drain``
    hands it over regardless (before the response, so nothing is lost).
    Times are the caller's monotonic seconds.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_sent_s = float("-inf")
        self._waiting: ProgressNotice | None = None

    def offer(self, notice: ProgressNotice, now_s: float) -> ProgressNotice | None:
        if now_s - self._last_sent_s >= self.interval_s:
            self._waiting = None
            self._last_sent_s = now_s
            return notice
        self._waiting = notice
        return None

    def wait_s(self, now_s: float) -> float | None:
        """Seconds until the waiting notice is due; None when none waits."""
        if self._waiting is None:
            return None
        return max(0.0, self._last_sent_s + self.interval_s - now_s)

    def due(self, now_s: float) -> ProgressNotice | None:
        if self._waiting is None or now_s - self._last_sent_s < self.interval_s:
            return None
        notice, self._waiting = self._waiting, None
        self._last_sent_s = now_s
        return notice

    def drain(self) -> ProgressNotice | None:
        notice, self._waiting = self._waiting, None
        return notice
