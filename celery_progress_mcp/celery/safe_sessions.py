"""Session calls made from Celery's signal handlers: refusals are logged, never raised.

Tracking never fails a ``delay()`` or a task, whatever the store or the
broker do: every part of the integration that writes from a signal goes
through :class:`SafeSessions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec

from ..core.errors import InvalidProgress, InvalidTransition, ProgressError, SessionNotFound
from ..core.models import ProgressSession
from ..store.base import Mutation
from ..tracking.tracker import ProgressTracker

__all__ = ["SafeSessions"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")


class SafeSessions:
    """Create, change and read sessions for the integration; never raises into Celery."""

    def __init__(self, tracker: ProgressTracker) -> None:
        self.tracker = tracker

    def create(
        self,
        session_id: str,
        name: str,
        metadata: dict[str, Any],
        parent_id: str | None,
        created_at: datetime | None = None,
        *,
        if_absent: bool = False,
    ) -> bool:
        """Create the session (dated ``created_at``, else now); False if refused here.

        With the tracker's writer the creation is queued: the store's refusal
        (it exists already, capacity) comes later, to the refusal listeners.
        ``if_absent``: an existing session is left as it is.
        """
        try:
            self.tracker.create_session(
                name,
                metadata,
                session_id=session_id,
                parent_id=parent_id,
                created_at=created_at,
                if_absent=if_absent,
            )
        except InvalidProgress as exc:
            if "already exists" not in str(exc):
                logger.warning("progress session %s not created: %s", session_id, exc)
            return False
        except ProgressError as exc:
            logger.warning("progress session %s not created: %s", session_id, exc)
            return False
        return True

    def mutate(
        self, session_id: str, mutation: Mutation, *, deferred: bool = False
    ) -> ProgressSession | None:
        """Run an engine function on the committed session; None if refused or failed.

        ``deferred``: see :meth:`defer`.
        """
        try:
            return self.tracker.apply_mutation(session_id, mutation, deferred=deferred)
        except (InvalidTransition, SessionNotFound) as exc:
            logger.debug("progress change of %s refused: %s", session_id, exc)
        except ProgressError as exc:
            logger.warning("progress change of %s failed: %s", session_id, exc)
        return None

    def defer(self, session_id: str, mutation: Mutation) -> ProgressSession | None:
        """Queue an engine function for the tracker's writer, even for a session this
        process does not know: the store decides, in the writer's next batch (its
        refusal goes to the refusal listeners). The session as this process will
        see it, where it knows it; else None. Without a writer it is written now."""
        return self.mutate(session_id, mutation, deferred=True)

    def committed(self, session_id: str) -> ProgressSession | None:
        """The session as the store has it (without history); None if absent or unreadable."""
        try:
            return self.tracker.store.get(session_id, with_history=False)
        except ProgressError as exc:
            logger.debug("progress session %s not readable: %s", session_id, exc)
            return None

    def call(self, method: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        """Call a tracker method; a refusal is logged at debug level, any failure logged."""
        try:
            method(*args, **kwargs)
        except (InvalidTransition, SessionNotFound) as exc:
            logger.debug("progress call refused: %s", exc)
        except Exception:
            logger.exception("progress tracking failed (the task goes on)")
