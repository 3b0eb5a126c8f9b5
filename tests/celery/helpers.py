"""Small helpers of the Celery tests: waiting for a session, reading its history."""

from __future__ import annotations

from collections.abc import Collection

from celery_progress_mcp import ProgressSession, ProgressTracker
from celery_progress_mcp.core.states import TERMINAL_STATUSES
from celery_progress_mcp.testing import eventually

__all__ = ["finished", "history_percentages", "wait_status"]


def wait_status(
    tracker: ProgressTracker,
    session_id: str,
    statuses: str | Collection[str],
    timeout_s: float = 30.0,
) -> ProgressSession:
    """The session once its status is one of ``statuses``."""
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def reached() -> ProgressSession | None:
        session = tracker.get_session(session_id)  # SessionNotFound: not yet
        return session if session.state.status in wanted else None

    return eventually(reached, timeout_s=timeout_s, what=f"session {session_id} in {wanted}")


def finished(tracker: ProgressTracker, session_id: str, timeout_s: float = 60.0) -> ProgressSession:
    return wait_status(tracker, session_id, TERMINAL_STATUSES, timeout_s)


def history_percentages(session: ProgressSession) -> list[float]:
    """The percentages of the in-progress snapshots, in order."""
    found = []
    for snapshot in session.history:
        percentage = getattr(snapshot.state, "percentage", None)
        if snapshot.state.status == "in_progress" and percentage is not None:
            found.append(percentage)
    return found
