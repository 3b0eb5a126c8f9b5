"""Where celery-progress's answers come from: the session, else Celery's result backend.

:class:`CompatReader` finds what is known of an id and hands it to the pure
builders of :mod:`.compat`. A task is read as its session while it runs,
and with the backend's state once it has ended (for its result); an id
without a session is read from the backend alone, as celery-progress reads
every id. A group's members are its session's sub-operations, else the
children of the ``GroupResult`` the backend saved (``GroupResult.save()``,
which celery-progress needs too).

Without a Celery app, or with an app that has no result backend, an id
without a session is PENDING, as it was before the task was seen.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celery.backends.base import DisabledBackend

from ..celery.metadata_keys import KIND, PARENT_KINDS
from ..core.errors import SessionNotFound
from ..core.models import ProgressSession
from ..core.states import TERMINAL_STATUSES
from ..tracking.aio import AsyncTrackerBase
from .compat import (
    Answer,
    BackendState,
    from_backend,
    from_session,
    from_sub_operation,
    group_answer,
    pending,
)
from .tracker_access import TrackerAccess

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["CompatReader", "ResultBackendError"]

logger = logging.getLogger(__name__)


class ResultBackendError(Exception):
    """The result backend could not be read for the id (the cause is chained)."""


class CompatReader:
    """celery-progress's answers for any task or group id."""

    def __init__(self, access: TrackerAccess, app: Celery | None) -> None:
        self._access = access
        self._app = app
        # A result backend waits on the network whatever the store: always off the loop.
        self._backend = AsyncTrackerBase(app, blocking=True)

    async def task(self, task_id: str, *, unknown: Answer | None = None) -> Answer:
        """The answer for ``task_id``; ``unknown``: the answer when nothing knows more.

        An untracked id whose backend cannot be read raises
        :class:`ResultBackendError`; a tracked one falls back to its session.
        """
        session = await self._session(task_id)
        if session is not None and session.status not in TERMINAL_STATUSES:
            return from_session(session)
        try:
            state = await self._backend.run(self._read_state, task_id)
        except Exception as exc:
            if session is None:
                raise ResultBackendError(task_id) from exc
            logger.warning(
                "result backend unreadable for %s; answering from its session: %r", task_id, exc
            )
            state = None
        if session is not None:
            return from_session(session, state)
        if state is None or (state.status == "PENDING" and unknown is not None):
            return unknown if unknown is not None else pending()
        return from_backend(state)

    async def group(self, group_id: str) -> Answer:
        """The answer for a group; :class:`SessionNotFound` when nothing knows the id."""
        session = await self._session(group_id)
        if session is not None:
            return group_answer(await self._members_of(session))
        try:
            member_ids = await self._backend.run(self._restore_group, group_id)
        except Exception as exc:
            raise ResultBackendError(group_id) from exc
        if not member_ids:  # unknown, or nothing to track: celery-progress fails too
            raise SessionNotFound(group_id)
        return group_answer([await self.task(member_id) for member_id in member_ids])

    async def _members_of(self, session: ProgressSession) -> list[Answer]:
        """Each member as its sub-operation says; with its own answer once all have ended."""
        subs = session.sub_operations
        if not subs:  # members not dispatched yet: the session stands for them
            return [from_session(session)]
        answers = [from_sub_operation(sub) for sub in subs]
        if session.status in TERMINAL_STATUSES:
            # A member left behind by its parent's end ends with it: no endless polling.
            ended = from_session(session)
            answers = [answer if answer["complete"] else ended for answer in answers]
        if session.metadata.get(KIND) not in PARENT_KINDS or not all(
            answer["complete"] for answer in answers
        ):
            return answers
        # Every Celery member has ended: each one's own answer brings its result.
        members: list[Answer] = []
        for sub, answer in zip(subs, answers, strict=True):
            try:
                own = await self.task(sub.id, unknown=answer)
            except ResultBackendError:
                own = answer
            members.append(own if own["complete"] else answer)
        return members

    async def _session(self, session_id: str) -> ProgressSession | None:
        try:
            return await self._access.session(session_id)
        except SessionNotFound:
            return None

    def _read_state(self, task_id: str) -> BackendState | None:
        """The backend's state of ``task_id``; None without a backend (blocking)."""
        if self._app is None or isinstance(self._app.backend, DisabledBackend):
            return None
        meta = self._app.backend.get_task_meta(task_id)
        return BackendState(meta["status"], meta.get("result"), meta.get("traceback"))

    def _restore_group(self, group_id: str) -> list[str] | None:
        """The ids of a group saved in the backend; None when it holds none (blocking)."""
        if self._app is None or isinstance(self._app.backend, DisabledBackend):
            return None
        restored = self._app.GroupResult.restore(group_id)
        if restored is None:
            return None
        return [child.id for child in restored.results]
