"""``CeleryProgressTracker``: the tracker ``install(app)`` returns, for one Celery app.

It composes a :class:`~celery_progress_mcp.tracking.tracker.ProgressTracker`
(``.tracker``), whose whole public API it offers (each method forwarded, see
:class:`forwarded`), and adds what only Celery knows:

* ``cancel_session`` on a task's session also revokes the task, so a task
  still queued never runs (a running one stops at its next update); on a
  group, chord or chain's session it cancels and revokes every member;
* ``session_for(result)``: the session a user means by an ``AsyncResult``, a
  ``GroupResult`` or a chord's result;
* ``revoke`` and ``is_finished``;
* queued task sessions are spared by the session timeout (:func:`may_time_out`),
  and a task's session whose end the result backend knows ends so rather
  than "TIMEOUT" (:class:`TaskTimeOuts`).

The store and the bus are made from the app's settings: the store its URL
names, and a bus on the app's broker (:func:`bus_for`). After a ``fork`` the
tracker, its store and its bus renew themselves (``tracking.forks``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from ..bus.base import EventBus
from ..bus.kombu import KombuBus
from ..bus.local import LocalBus
from ..core.clock import Clock
from ..core.config import ProgressConfig
from ..core.engine import Change, Engine
from ..core.errors import ProgressError, SessionNotFound
from ..core.models import ProgressSession
from ..core.states import TERMINAL_STATUSES, SessionStatus
from ..store.base import Store
from ..store.memory import MemoryStore
from ..tracking.store_factory import store_from_url
from ..tracking.tracker import ProgressTracker
from .canvas import chain_session_id
from .metadata_keys import KIND, KIND_TASK, PARENT_KINDS
from .outcomes import BackendOutcomes
from .settings import CelerySettings

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "CeleryProgressTracker",
    "TaskTimeOuts",
    "bus_for",
    "exchange_for",
    "forwarded",
    "may_time_out",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class forwarded(Generic[P, R]):
    """A ``ProgressTracker`` method offered by ``CeleryProgressTracker``, same signature.

    ``get_session = forwarded(ProgressTracker.get_session)`` calls the
    composed tracker's ``get_session``. The bound method is kept on the
    instance at first use, so later calls cost what a method call costs.
    """

    def __init__(self, method: Callable[Concatenate[ProgressTracker, P], R]) -> None:
        self._name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, instance: None, owner: type) -> Self: ...

    @overload
    def __get__(self, instance: CeleryProgressTracker, owner: type) -> Callable[P, R]: ...

    def __get__(self, instance: CeleryProgressTracker | None, owner: type) -> Self | Callable[P, R]:
        if instance is None:
            return self
        bound: Callable[P, R] = getattr(instance.tracker, self._name)
        instance.__dict__[self._name] = bound
        return bound


class CeleryProgressTracker:
    """The tracker ``install(app)`` returns; see the module's docstring."""

    def __init__(self, app: Celery, tracker: ProgressTracker, *, owns_parts: bool = False) -> None:
        """``owns_parts``: ``close()`` also closes the tracker's store and bus."""
        self.app = app
        #: The tracker composed: every progress call goes to it.
        self.tracker = tracker
        self._owns_parts = owns_parts
        # Set once by the tracker, never replaced (a fork renews them in place).
        self.config: ProgressConfig = tracker.config
        self.enabled: bool = tracker.enabled
        self.store: Store = tracker.store
        self.bus: EventBus = tracker.bus
        self.clock = tracker.clock
        self.engine = tracker.engine

    @classmethod
    def for_app(
        cls,
        app: Celery,
        config: ProgressConfig,
        settings: CelerySettings,
        outcomes: BackendOutcomes | None = None,
    ) -> CeleryProgressTracker:
        """A tracker over the store ``config`` names and a bus the app's settings choose.

        ``outcomes``: how the app's result backend is asked before a task's
        session times out (default: directly).
        """
        store = store_from_url(config.store_url)
        bus = bus_for(app, store, config, settings)
        time_outs = TaskTimeOuts(outcomes or BackendOutcomes(app))
        tracker = ProgressTracker(config, store=store, bus=bus, may_time_out=time_outs)
        time_outs.bind(tracker.engine, tracker.clock)
        return cls(app, tracker, owns_parts=True)

    create_session = forwarded(ProgressTracker.create_session)
    update_progress = forwarded(ProgressTracker.update_progress)
    add_sub_operations = forwarded(ProgressTracker.add_sub_operations)
    start_sub_operation = forwarded(ProgressTracker.start_sub_operation)
    update_sub_operation = forwarded(ProgressTracker.update_sub_operation)
    complete_sub_operation = forwarded(ProgressTracker.complete_sub_operation)
    fail_sub_operation = forwarded(ProgressTracker.fail_sub_operation)
    pause_session = forwarded(ProgressTracker.pause_session)
    resume_session = forwarded(ProgressTracker.resume_session)
    complete_session = forwarded(ProgressTracker.complete_session)
    fail_session = forwarded(ProgressTracker.fail_session)
    heartbeat = forwarded(ProgressTracker.heartbeat)
    apply_mutation = forwarded(ProgressTracker.apply_mutation)
    add_refusal_listener = forwarded(ProgressTracker.add_refusal_listener)
    get_session = forwarded(ProgressTracker.get_session)
    list_sessions = forwarded(ProgressTracker.list_sessions)
    count_sessions = forwarded(ProgressTracker.count_sessions)
    get_stats = forwarded(ProgressTracker.get_stats)
    health = forwarded(ProgressTracker.health)
    subscribe_to_events = forwarded(ProgressTracker.subscribe_to_events)
    cleanup_expired = forwarded(ProgressTracker.cleanup_expired)
    flush = forwarded(ProgressTracker.flush)

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
        with ``terminate=True`` (the pool process gets SIGTERM). A group's,
        chord's or chain's members still pending or running end Cancelled in
        its sub-operations with it, and their own sessions are cancelled.
        """
        session = self.get_session(session_id) if revoke and self.enabled else None
        self.tracker.cancel_session(session_id, reason)
        if session is None:
            return
        kind = session.metadata.get(KIND)
        task_ids: list[str] = []
        if kind == KIND_TASK:
            task_ids.append(session.id)
        elif kind in PARENT_KINDS:
            task_ids.extend(sub.id for sub in session.sub_operations if not sub.state.is_terminal)
            self._cancel_members(task_ids, reason)
        if task_ids:
            self.revoke(task_ids, terminate=terminate)

    def _cancel_members(self, member_ids: Collection[str], reason: str) -> None:
        for member_id in member_ids:
            try:
                self.tracker.cancel_session(member_id, reason)
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
            if owner.metadata.get(KIND) in PARENT_KINDS and last == session.id:
                return owner  # a chord's callback, a chain's last task: the whole
        return session

    def is_finished(self, session_id: str) -> bool:
        """Whether the session is terminal (or gone); False when the store cannot say."""
        try:
            return self.get_session(session_id).state.status in TERMINAL_STATUSES
        except SessionNotFound:
            return True
        except ProgressError:
            return False

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, stop the tracker's threads; close the store and bus it was made with."""
        self.tracker.close()
        if self._owns_parts:
            self.bus.close()
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def may_time_out(session: ProgressSession) -> bool:
    """A queued task is waiting, not silent (it may have a countdown of days):
    only the worker-side heartbeat decides about started tasks."""
    return not (
        session.state.status == SessionStatus.INITIALIZING
        and session.metadata.get(KIND) == KIND_TASK
    )


class TaskTimeOuts:
    """The Celery tracker's ``may_time_out``: :func:`may_time_out`, after asking the
    result backend about a task's session: a task it knows ended ends so, not "TIMEOUT".

    Called by the tracker's cleanup in the session's write transaction; the
    backend's answer is awaited at most ``outcomes``' bound.
    """

    def __init__(self, outcomes: BackendOutcomes) -> None:
        self._outcomes = outcomes
        self._engine: Engine | None = None
        self._clock: Clock | None = None

    def bind(self, engine: Engine, clock: Clock) -> None:
        """The tracker's engine and clock (the tracker is made with this object)."""
        self._engine = engine
        self._clock = clock

    def __call__(self, session: ProgressSession) -> bool | Change:
        engine, clock = self._engine, self._clock
        if session.metadata.get(KIND) == KIND_TASK and engine is not None and clock is not None:
            outcome = self._outcomes.ask([session.id]).get(session.id)
            if outcome is not None:
                return outcome.ending(engine, session, clock.now())
        return may_time_out(session)


def bus_for(
    app: Celery, store: Store, config: ProgressConfig, settings: CelerySettings
) -> EventBus:
    """The bus ``settings.bus`` chooses: the app's broker's fanout, polling, or local."""
    kind = settings.bus
    if kind == "local" or isinstance(store, MemoryStore):
        return LocalBus()
    bus = KombuBus(
        app.connection_for_write(),
        connection_pool=lambda: app.pool,  # looked up when first used: after a fork
        backfill=store.events_since,
        latest_seq=store.last_seq,
        exchange=exchange_for(settings.bus_exchange, config.store_url),
        poll_interval_s=settings.poll_interval_seconds,
        consume=False,
    )
    if kind == "poll":
        bus.fanout = False
    return bus


def exchange_for(prefix: str, store_url: str) -> str:
    """The fanout exchange of one store: apps sharing a broker but not a store never mix.

    Sequence numbers are per store, so a subscriber must only see its own
    store's events; the exchange name carries a digest of the store's URL
    (password left out), the same in every process configured alike.
    """
    from sqlalchemy.engine import make_url

    try:
        url = make_url(store_url)
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
            database = str(Path(database).resolve())
        identity = "|".join(
            [
                url.get_backend_name(),
                url.host or "",
                str(url.port or ""),
                url.username or "",
                database,
                str(sorted(url.query.items())),
            ]
        )
    except Exception:
        identity = store_url
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"{prefix}.{digest}"
