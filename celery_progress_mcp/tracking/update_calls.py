"""Turning a held update into the engine call that writes it, with the session's ETA.

A coalesced or queued update (:class:`~.held_updates.Pending`) becomes an
``Engine.update`` call dated when the update was made, not when it is
written. Checking it (against the session as this process sees it) must
have no side effect, so the ETA estimator only observes when the update is
written: :meth:`UpdateCalls.update_of` is the check, :meth:`UpdateCalls.mutation`
the write.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from ..core.clock import Clock
from ..core.engine import Change, Engine, EtaHook
from ..core.errors import ProgressError
from ..core.eta import EtaEstimator
from ..core.models import ProgressSession
from ..store.base import Creation, Mutation, Write
from .held_updates import Pending, Queued, Transition

__all__ = ["UpdateCalls"]


class UpdateCalls:
    """Engine calls for held updates, and every session's ETA estimator."""

    def __init__(self, engine: Engine, clock: Clock, eta_smoothing: float) -> None:
        self._engine = engine
        self._clock = clock
        self._eta_smoothing = eta_smoothing
        self._etas: dict[str, EtaEstimator] = {}

    def update_of(self, item: Pending) -> functools.partial[Change]:
        """The engine call of a pending or queued update, without the ETA (no side effect)."""
        return functools.partial(
            self._engine.update,
            state=item.state,
            sub_operation_updates=item.sub_update_list(),
            metadata=item.metadata,
            now=self._wall_time(item.at_s),
        )

    def mutation(self, session_id: str, item: Pending) -> Mutation:
        """The engine call that writes a pending or queued update."""
        return functools.partial(self.update_of(item), eta=self.eta_hook(session_id, item.at_s))

    def write(self, session_id: str, item: Queued) -> Write:
        """What the store is given for a queued write (a held update becomes its call)."""
        if isinstance(item, Pending):
            return self.mutation(session_id, item)
        return item.write if isinstance(item, Transition) else item

    def applied(self, session: ProgressSession | None, item: Queued) -> ProgressSession | None:
        """``session`` (None: not in the store) as a queued write would leave it, without
        side effects: unchanged where the write would be refused."""
        if isinstance(item, Creation):
            return item.change.session if session is None else session
        if session is None:
            return None
        try:
            if isinstance(item, Pending):
                return self.update_of(item)(session).session
            return item.check(session).session
        except ProgressError:
            return session

    def apply_pending(self, session: ProgressSession, pending: Pending) -> ProgressSession | None:
        """The session with a pending update applied; None if the update no longer applies."""
        try:
            return self.update_of(pending)(session).session
        except ProgressError:
            return None

    def eta_hook(self, session_id: str, at_s: float | None = None) -> EtaHook:
        """The session's ETA estimator, observing at ``at_s`` (default: now)."""
        estimator = self._etas.get(session_id)
        if estimator is None:
            estimator = self._etas[session_id] = EtaEstimator(self._eta_smoothing)
        return functools.partial(
            _observe, estimator, self._clock.monotonic() if at_s is None else at_s
        )

    def forget(self, session_id: str) -> None:
        """The session has ended (or what was known of it is stale)."""
        self._etas.pop(session_id, None)

    def _wall_time(self, at_s: float) -> datetime:
        return self._clock.now() - timedelta(seconds=max(0.0, self._clock.monotonic() - at_s))


def _observe(estimator: EtaEstimator, at_s: float, percentage: float) -> float | None:
    return estimator.observe(percentage, at_s)
