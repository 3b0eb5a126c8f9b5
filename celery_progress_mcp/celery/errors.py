"""The Celery integration's control-flow signal."""

from __future__ import annotations

__all__ = ["TaskCancelled"]


class TaskCancelled(BaseException):
    """Raised inside a tracked task whose session was cancelled from outside.

    ``tracker.cancel_session`` (or the dashboard, the CLI, an MCP client's
    ``notifications/cancelled``) cancels the session; the task's next
    ``self.progress.update()`` (or ``raise_if_cancelled()``) raises this.

    It derives from :class:`BaseException`, not :class:`Exception`, on
    purpose, as ``KeyboardInterrupt`` and ``GeneratorExit`` do: task code
    often wraps its work in ``except Exception:`` to log and carry on, or to
    retry, and that would swallow the cancellation and let the task run to
    the end. ``ProgressTask`` catches it at the task's boundary, leaves the
    session Cancelled, marks the result REVOKED and tells Celery to ignore
    the task (``celery.exceptions.Ignore``), so the worker goes on normally.
    ``finally`` blocks and context managers still run as it unwinds.
    """

    def __init__(self, session_id: str, reason: str = "") -> None:
        message = f"progress session {session_id!r} was cancelled"
        super().__init__(f"{message}: {reason}" if reason else message)
        self.session_id = session_id
        self.reason = reason
