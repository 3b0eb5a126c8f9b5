"""Committing: every store write, in order with the publication of its events.

A write made in the caller's thread (a creation, a transition, a flush)
first writes what this process holds back for its session, so the store
sees a session's updates in the order they were made; with an update held
back, the call is first checked against the session as it will find it, so
a call that is refused writes nothing. Runs of held writes, many sessions
at once, go to the store in one ``Store.apply_many``; what the store
refuses of them is noted for the refusal listeners (:mod:`.refusals`).

While the store is unavailable, writes are handed to the
:class:`~.outage.OutageBuffer` (which this committer owns and replays
through) and the caller is not failed; what it still holds at close goes to
the store's journal (:mod:`.journal`), which :meth:`Committer.replay` writes
when a later tracker opens the store. Locks: see :mod:`.locks`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ..bus.base import EventBus
from ..core.engine import Change
from ..core.errors import InvalidTransition, ProgressError, SessionNotFound, StoreUnavailable
from ..core.models import ProgressEvent, ProgressSession
from ..core.states import TERMINAL_STATUSES
from ..store.base import Applied, Creation, Mutation, Store, Write
from .held_updates import Window
from .journal import Journal
from .outage import BufferedWrite, OutageBuffer
from .refusals import Refusals
from .shared_state import SharedState

__all__ = ["Committer", "Run"]

logger = logging.getLogger(__name__)

#: One session's writes, to be written in order.
Run = tuple[str, list[Write]]


class Committer:
    """Writes to the store and publishes what was written; see the module's docstring."""

    def __init__(
        self,
        shared: SharedState,
        store: Store,
        bus: EventBus,
        *,
        max_active: int,
        history_limit: int,
        retry_in_background: bool,
        refusals: Refusals | None = None,
        journal: Journal | None = None,
        reconnected: Callable[[], None] | None = None,
    ) -> None:
        """``journal``: where what an outage still holds at close is kept;
        ``reconnected``: called when the store answers again after an outage."""
        self._store = store
        self.refusals = refusals if refusals is not None else Refusals()
        self._bus = bus
        self._engine = shared.engine
        self._clock = shared.clock
        self._commit_lock = shared.locks.commit
        self._lock = shared.locks.state
        self._windows = shared.windows
        self._calls = shared.calls
        #: ``max_concurrent_sessions``: what each creation is checked against.
        self.max_active = max_active
        self._history_limit = history_limit
        #: Writes held back by a store outage, replayed in order on reconnect.
        self.outage = OutageBuffer(
            self._replay_buffered,
            self._commit_lock,
            probe=self._store_answers,
            update_function=shared.engine.update,
            background=retry_in_background,
            after_replay=self.refusals.report,
            journal=journal,
            reconnected=reconnected,
        )

    # -- one write ---------------------------------------------------------------

    def create(self, change: Change, *, if_absent: bool = False, counted: bool = False) -> None:
        """Insert a new session now (buffered while the store is down).

        ``if_absent``: an existing session is left as it is, and known here as
        the store has it. ``counted``: learn the active sessions in the same
        transaction (``Windows.store_active``, which queued creations are
        checked against).
        """
        session_id = change.session.id
        with self._commit_lock, self._lock:
            try:
                if self.outage.engaged:
                    raise StoreUnavailable("the progress store is down")
                if if_absent or counted:
                    self._create_in_batch(Creation(change, if_absent))
                    return
                events = self._store.create(
                    change, max_active=self.max_active, history_limit=self._history_limit
                )
            except StoreUnavailable as exc:
                self.outage.add(session_id, Creation(change, if_absent), exc)
                return
            self._windows.created(change.session)
            self.publish(events)

    def _create_in_batch(self, creation: Creation) -> None:
        """``create`` through ``apply_many``, which can skip an existing session and
        says how many are active (the caller holds the locks)."""
        session_id = creation.session_id
        result = self._apply_many([(session_id, [creation])])[0]
        self._windows.answered(0, result.active_sessions)
        if result.error is not None:
            raise result.error
        if result.session is None:
            return
        if result.events:  # created; an existing session skipped logs none
            self._windows.created(result.session)
        else:
            self._note_written(result.session)
        self.publish(result.events)

    def commit(
        self,
        session_id: str,
        mutation: Mutation,
        *,
        check: Mutation | None = None,
        precheck: bool = True,
    ) -> ProgressSession | None:
        """Apply ``mutation``, writing out what is held for the session first.

        With an update held, the call is first tried (``check``, or
        ``mutation`` where it has no side effects) on the session as it will
        find it, so a call that is refused writes nothing; ``precheck=False``
        leaves it to the store (what this process sees refused it already,
        and may be stale).

        While the store is unavailable the write is buffered (see
        :mod:`.outage`) and None returned: the caller is not failed.
        """
        with self._commit_lock, self._lock:
            window = self._windows.get(session_id)
            if precheck and window is not None and (window.pending is not None or window.queued):
                view = self._local_view(session_id, window)
                if view is not None:
                    (check or mutation)(view)
            self.flush_session(session_id)
            try:
                if self.outage.holds(session_id):
                    self.outage.add(session_id, mutation)
                    return None
                session, events = self._store.apply(
                    session_id, mutation, history_limit=self._history_limit
                )
            except StoreUnavailable as exc:
                self.outage.add(session_id, mutation, exc)
                return None
            except (InvalidTransition, SessionNotFound):
                # What we knew of the session may be stale: forget it, so the
                # next update goes to the store and sees the truth.
                self.forget(session_id)
                raise
            self._note_written(session)
            self.publish(events)
            return session

    def _local_view(self, session_id: str, window: Window) -> ProgressSession | None:
        """The session as ``get_session`` shows it (without history); None if unknown."""
        base = window.session if window.ahead() else self._committed(session_id)
        if base is None or window.pending is None:
            return base
        return self._calls.apply_pending(base, window.pending)

    def _committed(self, session_id: str) -> ProgressSession | None:
        """The session as the store has it; None if the store cannot say (an outage)."""
        if self.outage.engaged:
            return None
        try:
            return self._store.get(session_id, with_history=False)
        except StoreUnavailable:
            return None

    def purge_finished(self, ended_before: datetime) -> int:
        """Remove finished sessions last updated before ``ended_before``; how many."""
        with self._commit_lock:
            events = self._store.purge_finished(ended_before, self._engine.expired_event)
            self.publish(events)
        return len(events)

    # -- held updates ------------------------------------------------------------

    def flush_session(self, session_id: str) -> None:
        """Write out what is queued and pending for one session (caller holds the locks)."""
        items = self._windows.take_session(session_id)
        if items:
            self.write_runs([(session_id, [self._calls.write(session_id, item) for item in items])])

    def flush_due(self, session_ids: Iterable[str]) -> None:
        """Write out the pending updates of these sessions whose window has ended."""
        now_s = self._clock.monotonic()
        with self._commit_lock, self._lock:
            for session_id in session_ids:
                window = self._windows.get(session_id)
                # A deadline left over from a pending update that a transition
                # already wrote out must not cut a later window short.
                pending = window.pending if window is not None else None
                if pending is not None and pending.deadline_s <= now_s:
                    self.flush_session(session_id)

    def flush_pending(self) -> None:
        """Write out every session's pending update (and what is queued behind it)."""
        with self._commit_lock, self._lock:
            for session_id in self._windows.with_pending():
                self.flush_session(session_id)

    def write_runs(self, runs: list[Run], *, in_flight: bool = False) -> None:
        """Write sessions' runs of writes together (caller holds the commit lock).

        ``in_flight``: the runs were counted in their windows' ``in_flight``.
        The store's refusal of a write (the session changed elsewhere, it
        exists already, capacity was reached) is logged, noted for the
        refusal listeners, and the rest of that session's run dropped, as for
        a coalesced update; an outage hands them to the outage buffer, in order.
        """
        sizes = {session_id: len(writes) for session_id, writes in runs}
        creations = sum(isinstance(write, Creation) for _, writes in runs for write in writes)
        try:
            results = self._apply_runs(runs)
        except BaseException:
            with self._lock:
                if in_flight:
                    self._windows.landed(sizes)
                self._windows.answered(creations, None)
            raise
        events = []
        with self._lock:
            if in_flight:
                self._windows.landed(sizes)
            counted = [r.active_sessions for r in results if r.active_sessions is not None]
            self._windows.answered(creations, counted[-1] if counted else None)
            for result in results:
                events.extend(result.events)
                if result.session is not None:
                    self._note_written(result.session)
                if result.error is not None:
                    logger.debug(
                        "dropped %d queued update(s) of %s: %s",
                        sizes[result.session_id] - result.applied,
                        result.session_id,
                        result.error,
                    )
                    self.refusals.note(result.session_id, result.error)
                    self.forget(result.session_id)
        self.publish(events)

    def _apply_runs(self, runs: list[Run]) -> list[Applied]:
        """``store.apply_many``, for the runs the outage buffer does not hold (those
        it takes, in order, as it takes everything while the store is down)."""
        held = [run for run in runs if self.outage.holds(run[0])]
        if held:
            runs = [run for run in runs if all(run is not h for h in held)]
        results: list[Applied] = []
        error: StoreUnavailable | None = None
        if runs:
            try:
                results = self._apply_many(runs)
            except StoreUnavailable as exc:
                held, error = held + runs, exc
        for session_id, writes in held:
            for write in writes:
                self.outage.add(session_id, write, error)
        return results

    def _apply_many(self, runs: list[Run]) -> list[Applied]:
        return self._store.apply_many(
            runs, history_limit=self._history_limit, max_active=self.max_active
        )

    def _note_written(self, session: ProgressSession) -> None:
        if session.state.status in TERMINAL_STATUSES:
            self.forget(session.id)
        else:
            self._windows.written(session, self._clock.monotonic())

    def forget(self, session_id: str) -> None:
        """Drop what this process knows of the session (it ended, or it is stale)."""
        self._windows.forget(session_id)
        self._calls.forget(session_id)

    def publish(self, events: list[ProgressEvent]) -> None:
        if events:
            self._bus.publish(events)

    # -- another process's journal ----------------------------------------------------

    def replay(self, runs: list[Run]) -> list[Applied]:
        """Write runs another process kept in its journal, in one transaction, and
        publish their events; what the store refuses is noted for the refusal
        listeners. Raises ``StoreUnavailable`` (nothing written) while the store is
        down. What this process knows of those sessions is left as it is: a view
        behind another process's writes, as always (the store decides).
        """
        with self._commit_lock:
            if self.outage.engaged:
                raise StoreUnavailable("the progress store is down")
            results = self._apply_many(runs)
            with self._lock:
                counted = [r.active_sessions for r in results if r.active_sessions is not None]
                self._windows.answered(0, counted[-1] if counted else None)
            for result in results:
                if result.error is not None:
                    self.refusals.note(result.session_id, result.error)
            events = [event for result in results for event in result.events]
            self.publish(sorted(events, key=lambda event: event.seq))
        self.refusals.report()
        return results

    # -- riding out a store outage -------------------------------------------------

    def _replay_buffered(self, write: BufferedWrite) -> None:
        """Write one buffered write (the buffer holds the commit lock); a refusal
        is noted for the listeners and raised."""
        try:
            if write.creation is not None:
                result = self._apply_many([(write.session_id, [write.creation])])[0]
                if result.error is not None:
                    raise result.error
                events = result.events
            else:
                assert write.mutation is not None
                session, events = self._store.apply(
                    write.session_id, write.mutation, history_limit=self._history_limit
                )
                with self._lock:
                    self._note_written(session)
        except ProgressError as exc:
            if not isinstance(exc, StoreUnavailable):
                self.refusals.note(write.session_id, exc)
            raise
        self.publish(events)

    def _store_answers(self) -> bool:
        return bool(self._store.health().get("status") == "ok")

    def health(self) -> dict[str, Any]:
        """The store's health and the outage buffer's state (see ``ProgressTracker.health``)."""
        outage = self.outage.report()
        store = self._store.health() if not outage["engaged"] else {"status": "unavailable"}
        degraded = outage["engaged"] or outage["buffered"] or store.get("status") != "ok"
        return {"status": "degraded" if degraded else "ok", "store": store, "outage": outage}
