"""The Celery app's blocking calls, awaitable: sending, cancelling, reading results.

The broker and the result backend are I/O whatever the progress store is,
so unlike the tracker's calls (which run inline over the memory store)
these always run in a worker thread: :class:`AsyncCelery` is an
``AsyncTrackerBase`` over the app that always blocks, and its ``run`` is
the one hop off the event loop.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..core.errors import InvalidTransition, ProgressError, SessionNotFound
from ..tracking.aio import AsyncTrackerBase
from ..tracking.tracker import ProgressTracker

__all__ = ["AsyncCelery", "Canceller", "revoke_and_cancel"]

logger = logging.getLogger(__name__)

#: Cancels a task: ``(task_id, reason, terminate)``; blocking, run in a thread.
Canceller = Callable[[str, str, bool], None]


def revoke_and_cancel(app: Any, tracker: ProgressTracker) -> Canceller:
    """The default canceller: end the session Cancelled with the reason, and revoke.

    The session is cancelled first so that a tracked task's next update
    stops it (cooperative cancellation); the revoke keeps a queued task from
    ever running, and with ``terminate`` stops a running one. The Celery
    integration's tracker revokes by itself (members too, for a group);
    another tracker gets a plain ``revoke``.
    """
    celery_aware = "terminate" in inspect.signature(tracker.cancel_session).parameters

    def cancel(task_id: str, reason: str, terminate: bool) -> None:
        try:
            if celery_aware:
                cancel_session: Any = tracker.cancel_session
                cancel_session(task_id, reason, terminate=terminate)
                return
            tracker.cancel_session(task_id, reason)
        except InvalidTransition:
            return  # already ended
        except SessionNotFound:
            pass  # untracked: revoke all the same
        except ProgressError:
            logger.exception("could not record the cancellation of %s", task_id)
        app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")

    return cancel


class AsyncCelery(AsyncTrackerBase):
    """A Celery app's calls to its broker and result backend, off the event loop."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, blocking=True)

    @property
    def app(self) -> Any:
        return self.sync

    async def cancel(
        self, canceller: Canceller, task_id: str, reason: str, terminate: bool
    ) -> None:
        await self.run(canceller, task_id, reason, terminate)

    async def result(self, task_id: str, timeout_s: float) -> tuple[bool, Any]:
        """``(True, value)`` from the result backend, or ``(False, None)`` without one."""
        result = self.app.AsyncResult(task_id)
        if _backend_disabled(result):
            return False, None

        def fetch() -> tuple[bool, Any]:
            try:
                return True, result.get(
                    timeout=timeout_s, propagate=False, disable_sync_subtasks=False
                )
            except Exception as exc:  # the backend is down, or too slow
                logger.warning("result of %s not fetched: %s", task_id, exc)
                return False, None

        return await self.run(fetch)

    async def state(self, task_id: str) -> str | None:
        """The task's Celery state; None without a result backend, or when it does not answer."""
        result = self.app.AsyncResult(task_id)
        if _backend_disabled(result):
            return None
        return await self.run(_safe_state, result)

    async def error(self, task_id: str) -> Any:
        """What a failed task raised, as the result backend keeps it."""
        result = self.app.AsyncResult(task_id)
        return await self.run(lambda: result.result)


def _backend_disabled(result: Any) -> bool:
    return type(result.backend).__name__ == "DisabledBackend"


def _safe_state(result: Any) -> str | None:
    try:
        state: str = result.state
    except Exception as exc:
        logger.debug("result backend state unavailable: %s", exc)
        return None
    return state
