"""A parent's rollup from its members, as the engine functions apply it in the store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from celery_progress_mcp import Completed, Failed, InvalidTransition, ProgressConfig
from celery_progress_mcp.celery.canvas import (
    Member,
    MemberChange,
    member_mutation,
    seal_mutation,
)
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.core.models import ProgressSession, SubOperationState
from celery_progress_mcp.store.memory import MemoryStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MEMBERS = [Member(f"m{index}", "proj.piece", 1.0, index) for index in range(4)]
CALLBACK = Member("cb", "proj.merge", 1.0, 99)


@pytest.fixture
def engine() -> Engine:
    return Engine(ProgressConfig())


@pytest.fixture
def store(engine: Engine) -> MemoryStore:
    store = MemoryStore()
    change = engine.create(session_id="g", operation_id="celery.chord", now=NOW)
    store.create(change, max_active=10, history_limit=100)
    return store


def _apply(store: MemoryStore, engine: Engine, change: MemberChange) -> ProgressSession:
    session, _ = store.apply("g", member_mutation(engine, change, NOW), history_limit=100)
    return session


def _seal(store: MemoryStore, engine: Engine) -> ProgressSession:
    mutation = seal_mutation(engine, list(reversed(MEMBERS)), CALLBACK, NOW)
    session, _ = store.apply("g", mutation, history_limit=100)
    return session


def test_before_it_is_sealed_a_parent_stays_at_zero_and_cannot_complete(
    store: MemoryStore, engine: Engine
) -> None:
    first = MEMBERS[0]
    _apply(store, engine, MemberChange(first, SubOperationState.ACTIVE))
    session = _apply(store, engine, MemberChange(first, SubOperationState.COMPLETED, 100.0))
    assert session.state.status == "in_progress"
    assert session.percentage == 0.0  # 1 of 1 known member done is not 100 %


def test_sealing_orders_the_members_with_the_callback_last(
    store: MemoryStore, engine: Engine
) -> None:
    _apply(store, engine, MemberChange(MEMBERS[2], SubOperationState.ACTIVE))
    session = _seal(store, engine)
    assert [sub.id for sub in session.sub_operations] == ["m0", "m1", "m2", "m3", "cb"]
    assert session.metadata["celery_sealed"] is True


def test_the_rollup_never_goes_down_and_the_parent_completes(
    store: MemoryStore, engine: Engine
) -> None:
    _seal(store, engine)
    seen = []
    for member in MEMBERS:
        for percentage in (30.0, 10.0, 80.0):  # a late, lower report changes nothing
            seen.append(
                _apply(store, engine, MemberChange(member, percentage=percentage)).percentage
            )
        seen.append(
            _apply(
                store, engine, MemberChange(member, SubOperationState.COMPLETED, 100.0)
            ).percentage
        )
    assert seen == sorted(seen)
    session = _apply(store, engine, MemberChange(CALLBACK, SubOperationState.COMPLETED, 100.0))
    assert isinstance(session.state, Completed)


def test_a_failed_member_fails_the_parent_naming_it(store: MemoryStore, engine: Engine) -> None:
    _seal(store, engine)
    session = _apply(
        store,
        engine,
        MemberChange(MEMBERS[1], SubOperationState.FAILED, error="ValueError: bad row"),
    )
    assert isinstance(session.state, Failed)
    assert session.state.error_code == "MEMBER_FAILED"
    assert "proj.piece [m1]" in session.state.error_message
    assert "bad row" in session.state.error_message
    with pytest.raises(InvalidTransition):
        _apply(store, engine, MemberChange(MEMBERS[2], SubOperationState.COMPLETED))


def test_a_repeated_end_is_ignored(store: MemoryStore, engine: Engine) -> None:
    _seal(store, engine)
    _apply(store, engine, MemberChange(MEMBERS[0], SubOperationState.COMPLETED, 100.0))
    session = _apply(store, engine, MemberChange(MEMBERS[0], SubOperationState.FAILED, error="x"))
    assert session.state.status == "in_progress"  # the first word stands
    assert session.sub_operation("m0").state is SubOperationState.COMPLETED  # type: ignore[union-attr]
