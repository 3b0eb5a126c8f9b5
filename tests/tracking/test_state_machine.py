"""A hypothesis state machine drives the tracker with random calls against a model.

Every accepted call keeps the invariants (terminal states are final,
percentages in [0, 100], stats add up and match the model, event sequence
numbers strictly increase); every rejected call raises the error the model
expects and leaves everything as it was: the session (history included), the
stats and the event log. It runs with the window at 0 (every update written)
and with the default window (updates coalesced; the clock advances by hand).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from celery_progress_mcp import (
    CapacityExceeded,
    InProgress,
    InvalidProgress,
    InvalidTransition,
    ProgressConfig,
    ProgressError,
    ProgressEvent,
    ProgressEventType,
    ProgressSession,
    ProgressTracker,
    SessionNotFound,
    Store,
    SubOperation,
    SubOperationNotFound,
    SubOperationState,
    SubOperationUpdate,
)
from celery_progress_mcp.testing import FakeClock

from .conftest import StoreFactory

SOS = SubOperationState
ACTIVE = {"initializing", "in_progress", "paused"}
TERMINAL = {"completed", "failed", "cancelled"}
TERMINAL_EVENTS = {
    ProgressEventType.SESSION_COMPLETED,
    ProgressEventType.SESSION_FAILED,
    ProgressEventType.SESSION_CANCELLED,
}
MAX_ACTIVE = 4
MAX_METADATA_BYTES = 1024
MAX_HISTORY = 6
TIMEOUT_S = 100.0
RETENTION_S = 50.0

SUB_IDS = st.sampled_from(["a", "b", "c", "d"])
VALID_METADATA = st.dictionaries(
    st.sampled_from(["k1", "k2"]), st.integers(0, 9) | st.text(max_size=4), max_size=2
)
#: Mostly good metadata; now and then too big once merged, not JSON, or too big alone.
METADATA = st.one_of(
    st.none(),
    VALID_METADATA,
    VALID_METADATA,
    VALID_METADATA,
    st.sampled_from(
        [
            {"k3": "y" * 400},
            {"k4": "z" * 400},
            {"k5": {1, 2}},  # not JSON
            {"big": "x" * (MAX_METADATA_BYTES + 1)},  # oversized alone
        ]
    ),
)
SUB_UPDATES: st.SearchStrategy[list[SubOperationUpdate]] = st.one_of(
    st.just([]),
    st.lists(
        st.builds(
            SubOperationUpdate,
            id=SUB_IDS,
            state=st.sampled_from([None, SOS.ACTIVE]),
            percentage=st.none() | st.floats(0, 100),
        ),
        min_size=1,
        max_size=2,
        unique_by=lambda u: u.id,
    ),
)
#: Steps between two cleanups, which fail or remove every session.
STEPS_BETWEEN_CLEANUPS = 25


def json_size(value: dict[str, Any]) -> int | None:
    try:
        return len(json.dumps(value, allow_nan=False, separators=(",", ":")))
    except (TypeError, ValueError):
        return None


@dataclass
class ModelSession:
    status: str = "initializing"
    subs: dict[str, SubOperationState] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class TrackerMachine(RuleBasedStateMachine):
    """Subclasses set the config; ``store_factory`` is set before each run."""

    update_interval_ms = 0
    store_factory: StoreFactory

    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store: Store = self.store_factory()
        self.tracker = ProgressTracker(
            ProgressConfig(
                update_interval_ms=self.update_interval_ms,
                max_concurrent_sessions=MAX_ACTIVE,
                max_metadata_bytes=MAX_METADATA_BYTES,
                max_history_snapshots=MAX_HISTORY,
                session_timeout_seconds=TIMEOUT_S,
                finished_retention_seconds=RETENTION_S,
                cleanup_interval_seconds=1e9,  # cleanup only when a rule calls it
            ),
            store=self.store,
            clock=self.clock,
        )
        self.subscription = self.tracker.subscribe_to_events()
        self.model: dict[str, ModelSession] = {}
        self.removed: set[str] = set()
        self.created = 0
        self.ended: Counter[str] = Counter()
        self.last_seq = 0
        self.ended_sessions: set[str] = set()
        self.steps_since_cleanup = 0

    def teardown(self) -> None:
        self.tracker.close()
        self.store.close()

    # -- helpers ---------------------------------------------------------------

    def observe(self, session_id: str | None) -> tuple[Any, ...]:
        session: ProgressSession | None = None
        if session_id is not None:
            try:
                session = self.tracker.get_session(session_id)
            except SessionNotFound:
                session = None
        return session, self.tracker.get_stats(), self.tracker.store.last_seq()

    def attempt(
        self,
        session_id: str | None,
        expected: set[type[ProgressError]],
        call: Callable[[], object],
        on_success: Callable[[], None],
    ) -> None:
        if not expected:
            call()
            on_success()
            return
        before = self.observe(session_id)
        with pytest.raises(ProgressError) as raised:
            call()
        assert type(raised.value) in expected, f"raised {raised.value!r}, expected {expected}"
        assert self.observe(session_id) == before, f"rejected call changed state: {raised.value}"
        assert self.subscription.drain() == []

    def session_problem(self, session_id: str) -> set[type[ProgressError]]:
        m = self.model.get(session_id)
        if m is None:
            return {SessionNotFound}
        if m.status in TERMINAL:
            return {InvalidTransition}
        return set()

    def metadata_problem(
        self, current: dict[str, Any], metadata: dict[str, Any] | None
    ) -> set[type[ProgressError]]:
        if not metadata:
            return set()
        size = json_size(metadata)
        if size is None or size > MAX_METADATA_BYTES:
            return {InvalidProgress}
        merged_size = json_size({**current, **metadata})
        assert merged_size is not None
        return {InvalidProgress} if merged_size > MAX_METADATA_BYTES else set()

    def end(self, session_id: str, status: str) -> None:
        model = self.model[session_id]
        model.status = status
        if status == "cancelled":  # its open sub-operations end with it
            for sub_id, state in model.subs.items():
                if not state.is_terminal:
                    model.subs[sub_id] = SubOperationState.CANCELLED
        self.ended[status] += 1

    # -- rules -------------------------------------------------------------------

    @rule(
        target=sessions, operation_id=st.sampled_from(["op1", "op2", "op3", ""]), metadata=METADATA
    )
    def create_session(self, operation_id: str, metadata: dict[str, Any] | None) -> Any:
        expected: set[type[ProgressError]] = set()
        if not operation_id:
            expected.add(InvalidProgress)
        expected |= self.metadata_problem({}, metadata)
        active = sum(m.status in ACTIVE for m in self.model.values())
        if not expected and active >= MAX_ACTIVE:
            expected.add(CapacityExceeded)
        created: list[str] = []

        def call() -> None:
            created.append(self.tracker.create_session(operation_id, metadata))

        def accepted() -> None:
            self.model[created[0]] = ModelSession(metadata=dict(metadata or {}))
            self.created += 1

        self.attempt(None, expected, call, accepted)
        return multiple(*created)

    @rule(
        session_id=st.one_of(sessions, sessions, sessions, st.just("no-such-session")),
        percentage=st.floats(0, 100),
        sub_updates=SUB_UPDATES,
        metadata=METADATA,
    )
    def update_progress(
        self,
        session_id: str,
        percentage: float,
        sub_updates: list[SubOperationUpdate],
        metadata: dict[str, Any] | None,
    ) -> None:
        m = self.model.get(session_id)
        expected = self.session_problem(session_id)
        if not expected and m is not None:
            if m.status == "paused":
                expected = {InvalidTransition}
            else:
                for update in sub_updates:
                    if update.id not in m.subs:
                        expected.add(SubOperationNotFound)
                    elif m.subs[update.id].is_terminal:
                        expected.add(InvalidTransition)
                expected |= self.metadata_problem(m.metadata, metadata)

        def accepted() -> None:
            assert m is not None
            m.status = "in_progress"
            for update in sub_updates:
                if update.state is not None:
                    m.subs[update.id] = update.state
            m.metadata.update(metadata or {})

        self.attempt(
            session_id,
            expected,
            lambda: self.tracker.update_progress(
                session_id, InProgress(percentage=percentage), sub_updates, metadata
            ),
            accepted,
        )

    @rule(session_id=sessions, sub_ids=st.lists(SUB_IDS, min_size=1, max_size=3))
    def add_sub_operations(self, session_id: str, sub_ids: list[str]) -> None:
        m = self.model.get(session_id)
        expected = self.session_problem(session_id)
        duplicate = m is not None and (
            len(set(sub_ids)) < len(sub_ids) or bool(set(sub_ids) & set(m.subs))
        )
        if not expected and duplicate:
            expected = {InvalidProgress}

        def accepted() -> None:
            assert m is not None
            m.subs.update(dict.fromkeys(sub_ids, SOS.PENDING))

        subs = [SubOperation(id=i, name=i.upper(), weight=1 + len(i)) for i in sub_ids]
        self.attempt(
            session_id,
            expected,
            lambda: self.tracker.add_sub_operations(session_id, subs),
            accepted,
        )

    @rule(
        session_id=sessions,
        sub_id=SUB_IDS,
        change=st.sampled_from([SOS.ACTIVE, SOS.COMPLETED, SOS.FAILED]),
    )
    def change_sub_operation(self, session_id: str, sub_id: str, change: SubOperationState) -> None:
        target = change
        m = self.model.get(session_id)
        expected = self.session_problem(session_id)
        if not expected and m is not None:
            if sub_id not in m.subs:
                expected = {SubOperationNotFound}
            elif m.subs[sub_id].is_terminal:
                expected = {InvalidTransition}

        def accepted() -> None:
            assert m is not None
            m.subs[sub_id] = target
            if target is SOS.ACTIVE and m.status == "initializing":
                m.status = "in_progress"

        def call() -> None:
            if target is SOS.ACTIVE:
                self.tracker.start_sub_operation(session_id, sub_id)
            elif target is SOS.COMPLETED:
                self.tracker.complete_sub_operation(session_id, sub_id, {"done": True})
            else:
                self.tracker.fail_sub_operation(session_id, sub_id, "broken")

        self.attempt(session_id, expected, call, accepted)

    @rule(session_id=sessions)
    def pause_session(self, session_id: str) -> None:
        m = self.model.get(session_id)
        expected = self.session_problem(session_id)
        if not expected and m is not None and m.status == "paused":
            expected = {InvalidTransition}

        def accepted() -> None:
            assert m is not None
            m.status = "paused"

        self.attempt(
            session_id, expected, lambda: self.tracker.pause_session(session_id, "wait"), accepted
        )

    @rule(session_id=sessions)
    def resume_session(self, session_id: str) -> None:
        m = self.model.get(session_id)
        expected = self.session_problem(session_id)
        if not expected and m is not None and m.status != "paused":
            expected = {InvalidTransition}

        def accepted() -> None:
            assert m is not None
            m.status = "in_progress"

        self.attempt(
            session_id, expected, lambda: self.tracker.resume_session(session_id), accepted
        )

    @rule(session_id=sessions, ending=st.sampled_from(["completed", "failed", "cancelled"]))
    def end_session(self, session_id: str, ending: str) -> None:
        expected = self.session_problem(session_id)

        def call() -> None:
            if ending == "completed":
                self.tracker.complete_session(session_id, "done")
            elif ending == "failed":
                self.tracker.fail_session(session_id, "broken", "E1")
            else:
                self.tracker.cancel_session(session_id, "stop")

        self.attempt(session_id, expected, call, lambda: self.end(session_id, ending))

    @rule(session_id=sessions, percentage=st.floats(0, 100))
    def report_progress(self, session_id: str, percentage: float) -> None:
        """The hot path: a plain percentage, as a task reports it over and over."""
        self.update_progress(session_id, percentage, [], None)

    @rule(seconds=st.sampled_from([0.05, 0.2, 0.6]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def flush(self) -> None:
        self.tracker.flush()

    @precondition(lambda self: self.steps_since_cleanup >= STEPS_BETWEEN_CLEANUPS)
    @rule()
    def cleanup_after_a_long_silence(self) -> None:
        self.steps_since_cleanup = 0
        self.clock.advance(TIMEOUT_S + RETENTION_S + 1)
        result = self.tracker.cleanup_expired()
        finished = {sid for sid, m in self.model.items() if m.status in TERMINAL}
        active = {sid for sid, m in self.model.items() if m.status in ACTIVE}
        assert set(result.timed_out) == active
        assert result.removed == len(finished)
        for session_id in active:
            self.end(session_id, "failed")
            assert self.tracker.get_session(session_id).state.error_code == "TIMEOUT"  # type: ignore[union-attr]
        for session_id in finished:
            del self.model[session_id]
            self.removed.add(session_id)

    # -- invariants --------------------------------------------------------------

    @invariant()
    def sessions_match_the_model(self) -> None:
        self.steps_since_cleanup += 1
        for session_id, m in self.model.items():
            session = self.tracker.get_session(session_id)
            assert session.state.status == m.status
            assert {sub.id: sub.state for sub in session.sub_operations} == m.subs
            assert session.metadata == m.metadata
            assert 0.0 <= session.percentage <= 100.0
            indices = [snap.index for snap in session.history]
            assert 1 <= len(indices) <= MAX_HISTORY
            assert indices[0] == 0
            assert indices == sorted(set(indices))
            assert session.history[0].state.status == "initializing"
            if m.status in TERMINAL:
                assert session.history[-1].state.status == m.status
        for session_id in self.removed:
            with pytest.raises(SessionNotFound):
                self.tracker.get_session(session_id)

    @invariant()
    def stats_add_up(self) -> None:
        stats = self.tracker.get_stats()
        by_state = Counter(m.status for m in self.model.values())
        assert stats.sessions_by_state == {k: v for k, v in by_state.items() if v}
        assert stats.total_created == self.created
        assert stats.total_created == sum(stats.sessions_by_state.values()) + len(self.removed)
        assert stats.active_sessions == sum(by_state[s] for s in ACTIVE)
        assert stats.total_completed == self.ended["completed"]
        assert stats.total_failed == self.ended["failed"]
        assert stats.total_cancelled == self.ended["cancelled"]

    @invariant()
    def events_are_ordered_and_terminal_is_final(self) -> None:
        events: list[ProgressEvent] = self.subscription.drain()
        assert self.subscription.missed == 0
        for event in events:
            assert event.seq > self.last_seq
            self.last_seq = event.seq
            if event.session_id in self.ended_sessions:
                assert event.event_type is ProgressEventType.SESSION_EXPIRED, event
            if event.event_type in TERMINAL_EVENTS:
                self.ended_sessions.add(event.session_id)
            assert 0.0 <= event.data["percentage"] <= 100.0


class WindowedTrackerMachine(TrackerMachine):
    update_interval_ms = ProgressConfig().update_interval_ms


@pytest.mark.parametrize("machine", [TrackerMachine, WindowedTrackerMachine])
def test_random_call_sequences_keep_the_invariants(
    machine: type[TrackerMachine], store_factory: StoreFactory, store_kind: str
) -> None:
    machine.store_factory = staticmethod(store_factory)
    # Server round trips make each example costly: fewer of them there, the
    # full count on the in-process stores, to keep the suite within minutes.
    examples = {"postgresql": 12, "mariadb": 12}.get(store_kind, settings().max_examples)
    run_state_machine_as_test(
        machine, settings=settings(stateful_step_count=40, max_examples=examples)
    )
