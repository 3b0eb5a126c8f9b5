"""Property: any input either succeeds, reading back as given, or is refused.

Every public write of the tracker is called with arbitrary text (lone
surrogates, NUL, past every bound), numbers (NaN, strings, booleans, huge)
and mappings (non-string keys, non-JSON values). Each call either succeeds,
and the session reads back equal to what was given (texts that are truncated
read back as truncated), or raises a ``ProgressError`` and changes nothing:
not the session, not the event log. On the SQL store, ``flush()`` and
``close()`` then raise nothing: no refused input was held back to fail later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from celery_progress_mcp import (
    InProgress,
    ProgressConfig,
    ProgressError,
    ProgressSession,
    ProgressTracker,
    SubOperation,
)
from celery_progress_mcp.core.bounds import TRUNCATION_MARKER
from celery_progress_mcp.core.clock import SystemClock

from ..core.strategies import json_objects
from .conftest import TrackerFactory

#: Small bounds, so arbitrary text crosses them often.
BOUNDS = {
    "max_id_chars": 40,
    "max_name_chars": 24,
    "max_step_chars": 24,
    "max_error_chars": 64,
    "max_result_summary_chars": 64,
    "max_reason_chars": 64,
    "max_metadata_bytes": 256,
}
CONFIG = ProgressConfig(update_interval_ms=0, **BOUNDS)  # type: ignore[arg-type]

# Every code point, surrogates included, and the texts that matter most.
odd_text = st.text(st.characters(exclude_categories=()), max_size=80) | st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\udc80", "x\ud800", "é" * 40, "s" * 100]
)
odd_number = st.one_of(
    st.floats(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.sampled_from(["50", "", "nan"]),
)
odd_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    odd_text,
    st.builds(object),
)
odd_key = st.one_of(odd_text, odd_text, st.integers(), st.none(), st.booleans(), st.floats())
odd_value: st.SearchStrategy[Any] = st.recursive(
    odd_scalar,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(odd_key, children, max_size=3)
    ),
    max_leaves=8,
)
plain_text = st.text(min_size=1, max_size=12)
plain_number = st.floats(0, 100) | st.integers(0, 100)
any_text = plain_text | odd_text | odd_number
any_number = plain_number | odd_number | odd_text
any_mapping = json_objects | st.dictionaries(odd_key, odd_value, max_size=4)


def bounded(text: str | None, limit: int) -> str | None:
    """What a truncated text reads back as (written apart from the code under test)."""
    if text is None:
        return None
    text = "".join("\ufffd" if ch == "\x00" or 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return (
        text if len(text) <= limit else text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    )


@dataclass
class Call:
    """One public call and what the session must read as if it succeeds."""

    name: str
    run: Callable[[ProgressTracker, str], object]
    check: Callable[[ProgressSession, ProgressSession], None]

    def __repr__(self) -> str:
        return self.name


def update_progress(
    percentage: Any, step: Any, numbers: tuple[Any, Any], metadata: dict[Any, Any]
) -> Call:
    number, total = numbers

    def run(tracker: ProgressTracker, session_id: str) -> None:
        state = InProgress(
            percentage=percentage,
            current_step=step,
            current_step_number=number,
            total_steps=total,
        )
        tracker.update_progress(session_id, state, metadata=metadata)

    def check(before: ProgressSession, after: ProgressSession) -> None:
        assert isinstance(after.state, InProgress)
        assert after.state.percentage == percentage
        assert after.state.current_step == step
        assert (after.state.current_step_number, after.state.total_steps) == (number, total)
        assert after.metadata == {**before.metadata, **metadata}

    return Call(f"update_progress({percentage!r}, {step!r}, {numbers!r}, {metadata!r})", run, check)


def text_call(method: str, field: str, limit_field: str) -> Callable[[Any], Call]:
    """A lifecycle call whose one text argument is truncated, not refused."""

    def make(text: Any) -> Call:
        def run(tracker: ProgressTracker, session_id: str) -> None:
            getattr(tracker, method)(session_id, text)

        def check(before: ProgressSession, after: ProgressSession) -> None:
            assert getattr(after.state, field) == bounded(text, BOUNDS[limit_field])

        return Call(f"{method}({text!r})", run, check)

    return make


def fail_session(message: Any, code: Any) -> Call:
    def run(tracker: ProgressTracker, session_id: str) -> None:
        tracker.fail_session(session_id, message, code)

    def check(before: ProgressSession, after: ProgressSession) -> None:
        limit = BOUNDS["max_error_chars"]
        assert after.state.error_message == bounded(message, limit)  # type: ignore[union-attr]
        assert after.state.error_code == bounded(code, limit)  # type: ignore[union-attr]

    return Call(f"fail_session({message!r}, {code!r})", run, check)


def add_sub_operation(sub_id: Any, name: Any, weight: Any, metadata: dict[Any, Any]) -> Call:
    def run(tracker: ProgressTracker, session_id: str) -> None:
        sub = SubOperation(id=sub_id, name=name, weight=weight, metadata=metadata)
        tracker.add_sub_operations(session_id, [sub])

    def check(before: ProgressSession, after: ProgressSession) -> None:
        sub = after.sub_operation(sub_id)
        assert sub is not None
        assert (sub.name, sub.weight, sub.metadata) == (name, weight, metadata)

    return Call(f"add_sub_operations({sub_id!r}, {name!r}, {weight!r}, {metadata!r})", run, check)


def update_sub_operation(percentage: Any, metadata: dict[Any, Any]) -> Call:
    def run(tracker: ProgressTracker, session_id: str) -> None:
        tracker.update_sub_operation(session_id, "b", percentage, metadata)

    def check(before: ProgressSession, after: ProgressSession) -> None:
        old, new = before.sub_operation("b"), after.sub_operation("b")
        assert old is not None
        assert new is not None
        assert new.percentage == (old.percentage if percentage is None else percentage)
        assert new.metadata == {**old.metadata, **metadata}

    return Call(f"update_sub_operation({percentage!r}, {metadata!r})", run, check)


def fail_sub_operation(error: Any) -> Call:
    def run(tracker: ProgressTracker, session_id: str) -> None:
        tracker.fail_sub_operation(session_id, "b", error)

    def check(before: ProgressSession, after: ProgressSession) -> None:
        sub = after.sub_operation("b")
        assert sub is not None
        assert sub.error == bounded(error, BOUNDS["max_error_chars"])

    return Call(f"fail_sub_operation({error!r})", run, check)


def calls_of(
    text: st.SearchStrategy[Any], number: st.SearchStrategy[Any], mapping: st.SearchStrategy[Any]
) -> st.SearchStrategy[Call]:
    return st.one_of(
        st.builds(
            update_progress,
            number,
            st.none() | text,
            st.tuples(st.none() | number, st.none() | number)
            | st.tuples(st.integers(0, 9), st.integers(0, 9)),
            mapping,
        ),
        st.builds(text_call("pause_session", "reason", "max_reason_chars"), text),
        st.builds(text_call("cancel_session", "reason", "max_reason_chars"), text),
        st.builds(
            text_call("complete_session", "result_summary", "max_result_summary_chars"),
            st.none() | text,
        ),
        st.builds(fail_session, text, st.none() | text),
        st.builds(add_sub_operation, text, text, number, mapping),
        st.builds(update_sub_operation, st.none() | number, mapping),
        st.builds(fail_sub_operation, text),
    )


#: Half plausible, half anything: calls succeed about as often as they are refused.
calls = calls_of(plain_text, plain_number, json_objects) | calls_of(
    any_text, any_number, any_mapping
)


@pytest.fixture
def tracker(make_tracker: TrackerFactory, store_kind: str) -> Iterator[ProgressTracker]:
    # The real clock: with the SQL store, in-progress updates go through the
    # write-behind queue and its writer thread, where a refusal could hide.
    tracker = make_tracker(CONFIG, clock=SystemClock())
    yield tracker
    tracker.close()  # raises nothing


def running_session(tracker: ProgressTracker) -> tuple[str, ProgressSession]:
    """A session in progress with sub-operations "a" (pending) and "b" (active)."""
    session_id = tracker.create_session("op", {"k": "v"})
    tracker.add_sub_operations(
        session_id, [SubOperation(id="a", name="A"), SubOperation(id="b", name="B")]
    )
    tracker.start_sub_operation(session_id, "b")
    tracker.update_progress(session_id, InProgress(percentage=10, current_step="s"))
    tracker.flush()
    return session_id, tracker.get_session(session_id)


def one_call(tracker: ProgressTracker, call: Call) -> None:
    note(repr(call))
    session_id, before = running_session(tracker)
    last_seq = tracker.store.last_seq()
    try:
        call.run(tracker, session_id)
    except ProgressError as exc:
        event(f"{call.name.partition('(')[0]}: refused ({type(exc).__name__})")
        tracker.flush()
        assert tracker.get_session(session_id) == before
        assert tracker.store.last_seq() == last_seq
        return
    event(f"{call.name.partition('(')[0]}: succeeded")
    call.check(before, tracker.get_session(session_id))  # as this process shows it
    tracker.flush()
    call.check(before, tracker.get_session(session_id))  # as the store has it


PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@PROPERTY
@given(call=calls)
def test_a_call_succeeds_as_given_or_is_refused_changing_nothing(
    tracker: ProgressTracker, call: Call
) -> None:
    one_call(tracker, call)


@pytest.mark.parametrize("store_kind", ["postgresql"])
@settings(PROPERTY, max_examples=40)
@given(call=calls)
def test_on_postgresql_too(tracker: ProgressTracker, call: Call) -> None:
    one_call(tracker, call)


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@PROPERTY
@given(
    operation_id=any_text,
    metadata=any_mapping,
    session_id=st.none() | any_text,
    parent_id=st.none() | any_text,
)
def test_create_session_succeeds_as_given_or_creates_nothing(
    tracker: ProgressTracker, operation_id: Any, metadata: Any, session_id: Any, parent_id: Any
) -> None:
    count = tracker.count_sessions()
    try:
        created = tracker.create_session(
            operation_id, metadata, session_id=session_id, parent_id=parent_id
        )
    except ProgressError as exc:
        event(f"create_session: refused ({type(exc).__name__})")
        tracker.flush()
        assert tracker.count_sessions() == count
        return
    event("create_session: succeeded")
    tracker.flush()
    session = tracker.get_session(created)
    assert (session.operation_id, session.metadata, session.parent_id) == (
        operation_id,
        metadata,
        parent_id,
    )
    if session_id is not None:
        assert created == session_id


ADDRESSED = [
    ("get_session", lambda t, bad: t.get_session(bad)),
    ("update_progress", lambda t, bad: t.update_progress(bad, InProgress(percentage=1))),
    ("complete_session", lambda t, bad: t.complete_session(bad)),
    ("list_sessions", lambda t, bad: t.list_sessions(search=bad)),
]


@pytest.mark.parametrize(
    "store_kind",
    [
        "memory",
        "sqlite",
    ],
)
@pytest.mark.parametrize(("name", "call"), ADDRESSED, ids=[name for name, _ in ADDRESSED])
def test_an_id_that_is_not_text_finds_nothing_or_is_refused(
    tracker: ProgressTracker, name: str, call: Callable[[ProgressTracker, str], object]
) -> None:
    with contextlib.suppress(ProgressError):
        call(tracker, "\udc80")
    tracker.flush()
