"""``CeleryProgressTracker``: a ProgressTracker that knows its Celery app.

What it adds to the tracker (whose core stays free of Celery):

* ``cancel_session`` on a task's session also revokes the task, so a task
  still queued never runs (a running one stops at its next update); on a
  group, chord or chain's session it cancels and revokes every member;
* ``session_for(result)``: the session a user means by an ``AsyncResult``, a
  ``GroupResult`` or a chord's result;
* queued task sessions are spared by the session timeout (``may_time_out``);
* after a ``fork`` (prefork pool children, or any other) the child gets
  a fresh store and bus, made by ``parts``, instead of the parent's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

from ..bus.base import EventBus
from ..core.config import ProgressConfig
from ..core.errors import ProgressError, SessionNotFound
from ..core.models import ProgressSession
from ..core.states import TERMINAL_STATUSES, SessionStatus
from ..store.base import Store
from ..tracking.tracker import ProgressTracker
from . import metadata_keys as keys

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["CeleryProgressTracker", "chain_session_id", "may_time_out"]

logger = logging.getLogger(__name__)

#: Builds the store and the bus of a tracker; the argument is True in a forked
#: child (where the schema is known to exist already).
Parts = Callable[[bool], tuple[Store, EventBus]]


def chain_session_id(first_task_id: str) -> str:
    """The id of a chain's own session (its tasks keep theirs)."""
    return f"chain:{first_task_id}"


class CeleryProgressTracker(ProgressTracker):
    """The tracker ``install(app)`` returns; see the module's docstring."""

    def __init__(self, app: Celery, config: ProgressConfig, parts: Parts) -> None:
        self.app = app
        self._parts = parts
        store, bus = parts(False)
        super().__init__(config, store=store, bus=bus, may_time_out=may_time_out)
        # The tracker made (through ``parts``) what it was given: it closes them.
        self._owns_store = True
        self._owns_bus = True

    # -- cancelling --------------------------------------------------------------

    def cancel_session(
        self,
        session_id: str,
        reason: str = "",
        *,
        revoke: bool = True,
        terminate: bool = False,
    ) -> None:
        """Cancel the session and, with ``revoke``, revoke its task(s).

        A revoked task still queued never runs; a running one ends Cancelled
        at its next progress update (cooperative cancellation), or at once
        with ``terminate=True`` (the pool process gets SIGTERM).
        """
        session = self.get_session(session_id) if revoke and self.enabled else None
        super().cancel_session(session_id, reason)
        if session is None:
            return
        kind = session.metadata.get(keys.KIND)
        task_ids: list[str] = []
        if kind == keys.KIND_TASK:
            task_ids.append(session.id)
        elif kind in keys.PARENT_KINDS:
            task_ids.extend(sub.id for sub in session.sub_operations if not sub.state.is_terminal)
            self._cancel_members(task_ids, reason)
        if task_ids:
            self.revoke(task_ids, terminate=terminate)

    def _cancel_members(self, member_ids: Iterable[str], reason: str) -> None:
        for member_id in member_ids:
            try:
                ProgressTracker.cancel_session(self, member_id, reason)
            except ProgressError:
                continue  # not started (no session yet) or already finished

    def revoke(self, task_ids: Collection[str], *, terminate: bool = False) -> None:
        """Revoke tasks through Celery's remote control; failures are logged."""
        try:
            self.app.control.revoke(list(task_ids), terminate=terminate)
        except Exception as exc:
            logger.warning("could not revoke %d task(s): %s", len(task_ids), exc)

    # -- finding sessions ----------------------------------------------------------

    def session_for(self, result: Any) -> ProgressSession:
        """The session of a Celery result.

        * a ``GroupResult``: its group's session (members as sub-operations);
        * a chord's result (the callback's ``AsyncResult``, whose ``parent``
          is the header's ``GroupResult``), or the callback's id alone: the
          chord's session;
        * the last ``AsyncResult`` of a chain: the chain's session;
        * any other ``AsyncResult``: the task's own session.
        """
        from celery.result import GroupResult

        if isinstance(result, GroupResult):
            return self.get_session(result.id)
        parent = getattr(result, "parent", None)
        if isinstance(parent, GroupResult):
            try:
                return self.get_session(parent.id)
            except SessionNotFound:
                pass
        first = result
        while getattr(first, "parent", None) is not None and not isinstance(
            first.parent, GroupResult
        ):
            first = first.parent
        if first is not result:
            try:
                return self.get_session(chain_session_id(first.id))
            except SessionNotFound:
                pass
        session = self.get_session(result.id)
        if session.parent_id is not None:
            try:
                owner = self.get_session(session.parent_id)
            except SessionNotFound:
                return session
            last = owner.sub_operations[-1].id if owner.sub_operations else None
            if owner.metadata.get(keys.KIND) in keys.PARENT_KINDS and last == session.id:
                return owner  # a chord's callback, a chain's last task: the whole
        return session

    # -- after a fork --------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: drop the parent's connections and threads, make new ones.

        The parent's connections are abandoned without closing them (closing
        would tear down the parent's); its pending updates stay the parent's.
        """
        if self._closed:
            return
        try:
            self.store.after_fork()
        except Exception:
            logger.debug("could not detach the parent's store connections", exc_info=True)
        store, bus = self._parts(True)
        ProgressTracker.__init__(
            self, self.config, store=store, bus=bus, clock=self.clock, may_time_out=may_time_out
        )
        self._owns_store = True
        self._owns_bus = True

    def is_finished(self, session_id: str) -> bool:
        """Whether the session is terminal (or gone); False when the store cannot say."""
        try:
            return self.get_session(session_id).state.status in TERMINAL_STATUSES
        except SessionNotFound:
            return True
        except ProgressError:
            return False


def may_time_out(session: ProgressSession) -> bool:
    """A queued task is waiting, not silent (it may have a countdown of days):
    only the worker-side heartbeat decides about started tasks."""
    return not (
        session.state.status == SessionStatus.INITIALIZING
        and session.metadata.get(keys.KIND) == keys.KIND_TASK
    )
