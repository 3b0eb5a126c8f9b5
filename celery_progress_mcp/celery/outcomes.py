"""What Celery's result backend knows of a task's end, asked before a silence is called death.

The store may miss a task's end that Celery recorded: the end's write was
lost with its process, or the store was down then. So before a silent
task's session is failed (the liveness sweep's ``WORKER_LOST``, the
tracker's ``TIMEOUT``), the result backend is asked: SUCCESS ends the
session Completed with the result's summary, FAILURE Failed with the
error's type as code and its message, REVOKED Cancelled. The session's
metadata says where its end came from (``celery_ended_from``).

A task the backend knows nothing of (PENDING, STARTED, RETRY, a custom
state such as PROGRESS), a backend that errs or does not answer within
:data:`BACKEND_ANSWER_S`, an app without a result backend: the caller goes
on as if it had not asked. A task that ignores its result is never known
to the backend: its silence is judged as before.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..core.engine import Change, Engine
from ..core.models import ProgressSession
from .bounded import call_within
from .lifecycle import failure_of, summarize
from .metadata_keys import ENDED_FROM

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["BACKEND_ANSWER_S", "ENDED_STATES", "BackendOutcomes", "Outcome"]

logger = logging.getLogger(__name__)

#: Longest wait for the result backend's answer about a batch of tasks; then
#: the tasks not answered for are judged as if the backend knew nothing.
BACKEND_ANSWER_S = 2.0
#: The backend's states of a task that ended.
ENDED_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
#: ``celery_ended_from`` of a session whose end the result backend told.
FROM_RESULT_BACKEND = "result_backend"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A task's end as the result backend has it: its state and its result (or error)."""

    state: str
    result: Any

    def ending(self, engine: Engine, session: ProgressSession, now: datetime) -> Change:
        """The change that ends ``session`` so (the engine refuses a finished one)."""
        marked = session.replace(metadata={**session.metadata, ENDED_FROM: FROM_RESULT_BACKEND})
        if self.state == "SUCCESS":
            return engine.complete(marked, summarize(self.result), now=now)
        if self.state == "FAILURE":
            error = self.result if isinstance(self.result, BaseException) else None
            message, code = failure_of(error)
            return engine.fail(marked, message, code, now=now)
        return engine.cancel(marked, str(self.result or "") or "revoked", now=now)


class BackendOutcomes:
    """Asks an app's result backend how tasks ended, in bounded time."""

    def __init__(self, app: Celery, timeout_s: float = BACKEND_ANSWER_S) -> None:
        self._app = app
        self._timeout_s = timeout_s

    def ask(self, task_ids: Collection[str]) -> dict[str, Outcome]:
        """The ends the backend knows of these tasks; the others are left out."""
        if not task_ids or not self._app.conf.result_backend:
            return {}
        found: dict[str, Outcome] = {}
        try:
            call_within(lambda: self._read(task_ids, found), self._timeout_s, "result backend")
        except Exception as exc:
            logger.warning(
                "the result backend could not say how %d task(s) ended (judged as today): %s",
                len(task_ids) - len(found),
                exc,
            )
        return dict(found)

    def _read(self, task_ids: Collection[str], found: dict[str, Outcome]) -> None:
        """Fill ``found`` as answers come: those read before a timeout still count."""
        for task_id in task_ids:
            result = self._app.AsyncResult(task_id)
            state = result.state
            if state in ENDED_STATES:
                found[task_id] = Outcome(state, result.result)
