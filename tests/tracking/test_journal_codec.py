"""Property: every kind of write the tracker queues comes back from a journal as it went in.

A write is a creation (its ``Change``) or a mutation; a mutation is data when
it is one of the engine's own calls (``functools.partial`` of an ``Engine``
method) or a ``NamedCall``. ``functools.partial`` and ``Creation`` compare by
identity, so "equal" here is :func:`as_data`: a creation's change and flag, a
mutation's name and arguments (``named_calls.describe``), and the function it
calls (the same engine method, or the same registered name). The ETA hook of
an update is not data: it is left out (the replayed update has none).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celery_progress_mcp import InProgress, ProgressConfig, ProgressSession
from celery_progress_mcp.core.engine import Change, Engine
from celery_progress_mcp.store.base import Creation, Write
from celery_progress_mcp.tracking.journal_codec import (
    JOURNAL_FORMAT,
    JOURNAL_VERSION,
    NotReadableHere,
    UnreadableJournal,
    decode_journal,
    decode_write,
    encode_journal,
    encode_write,
)
from celery_progress_mcp.tracking.named_calls import NamedCall, describe, named_call

from ..core.strategies import (
    ids,
    json_objects,
    states,
    sub_operation_updates,
    sub_operations,
    texts,
    timestamps,
)

ENGINE = Engine(ProgressConfig())
STORE = "postgresql+psycopg://app@db.example/progress"
#: Ids the engine takes (not blank, no NUL), in every script.
session_ids = st.text(min_size=1, max_size=12).filter(
    lambda text: text.strip() and "\x00" not in text
)


def as_data(write: Write) -> tuple[Any, ...]:
    """What a write is, compared by value (see the module's docstring)."""
    if isinstance(write, Creation):
        return ("create", write.change, write.if_absent)
    described = describe(write)
    assert described is not None, write
    if isinstance(write, functools.partial):
        return ("engine call", write.func, *described)
    assert isinstance(write, NamedCall)
    return ("named call", write.engine, *described)


def round_trip(session_id: str, write: Write) -> tuple[str, Write]:
    """Through a whole journal file's bytes, as another process reads it."""
    data, kept, left_out = encode_journal(STORE, [(session_id, write)])
    assert (kept, left_out) == (1, 0)
    [decoded] = decode_journal(data, STORE, ENGINE)
    return decoded


creations = st.builds(
    lambda session_id, operation_id, metadata, parent_id, now, if_absent: Creation(
        ENGINE.create(
            session_id=session_id,
            operation_id=operation_id,
            metadata=metadata,
            parent_id=parent_id,
            now=now,
        ),
        if_absent,
    ),
    session_ids,
    session_ids,
    json_objects,
    st.none() | session_ids,
    timestamps,
    st.booleans(),
)


def _engine_call(method: Callable[..., Change], **arguments: Any) -> Write:
    return functools.partial(method, **arguments)


updates = st.builds(
    lambda state, subs, metadata, now: _engine_call(
        ENGINE.update,
        state=state,
        sub_operation_updates=tuple(subs),
        metadata=metadata,
        now=now,
    ),
    states,
    st.lists(sub_operation_updates, max_size=3),
    st.none() | json_objects,
    timestamps,
)
engine_calls = st.one_of(
    updates,
    st.builds(
        lambda subs, now: _engine_call(
            ENGINE.add_sub_operations, sub_operations=tuple(subs), now=now
        ),
        st.lists(sub_operations, max_size=3),
        timestamps,
    ),
    st.builds(
        lambda update, now: _engine_call(ENGINE.change_sub_operation, update=update, now=now),
        sub_operation_updates,
        timestamps,
    ),
    st.builds(lambda r, now: _engine_call(ENGINE.pause, reason=r, now=now), texts, timestamps),
    st.builds(lambda now: _engine_call(ENGINE.resume, now=now), timestamps),
    st.builds(
        lambda summary, now: _engine_call(ENGINE.complete, result_summary=summary, now=now),
        st.none() | texts,
        timestamps,
    ),
    st.builds(
        lambda message, code, now: _engine_call(
            ENGINE.fail, error_message=message, error_code=code, now=now
        ),
        texts,
        st.none() | texts,
        timestamps,
    ),
    st.builds(lambda r, now: _engine_call(ENGINE.cancel, reason=r, now=now), texts, timestamps),
    st.builds(lambda now: _engine_call(ENGINE.heartbeat, now=now), timestamps),
)


@given(creations)
def test_a_creation_comes_back_as_it_went_in(creation: Creation) -> None:
    decoded_id, decoded = round_trip(creation.session_id, creation)
    assert decoded_id == creation.session_id
    assert isinstance(decoded, Creation)
    assert as_data(decoded) == as_data(creation)
    assert decoded.change.session == creation.change.session  # every field, dates included


@given(ids, engine_calls)
def test_an_engine_call_comes_back_as_it_went_in(session_id: str, call: Write) -> None:
    decoded_id, decoded = round_trip(session_id, call)
    assert decoded_id == session_id
    assert isinstance(decoded, functools.partial)
    assert as_data(decoded) == as_data(call)


@given(ids, updates)
def test_an_update_comes_back_as_the_tracker_makes_it_without_its_eta(
    session_id: str, update: Write
) -> None:
    assert isinstance(update, functools.partial)
    with_eta = functools.partial(update, eta=lambda percentage: 12.0)
    _, decoded = round_trip(session_id, with_eta)
    assert isinstance(decoded, functools.partial)
    assert decoded.keywords == update.keywords  # the same keywords, but no "eta"


@given(ids, st.lists(st.one_of(creations, engine_calls), min_size=1, max_size=8))
def test_a_journal_keeps_its_writes_in_order(session_id: str, writes: list[Write]) -> None:
    pairs = [
        (write.session_id if isinstance(write, Creation) else f"{session_id}-{index % 3}", write)
        for index, write in enumerate(writes)
    ]
    data, kept, left_out = encode_journal(STORE, pairs)
    assert (kept, left_out) == (len(pairs), 0)
    decoded = decode_journal(data, STORE, ENGINE)
    assert [(sid, as_data(write)) for sid, write in decoded] == [
        (sid, as_data(write)) for sid, write in pairs
    ]


def test_a_decoded_call_does_what_the_original_does() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    created = ENGINE.create(session_id="s", operation_id="op", now=now)
    update = functools.partial(
        ENGINE.update,
        state=InProgress(percentage=40.0, current_step="reading"),
        sub_operation_updates=(),
        metadata={"rows": 4},
        now=now,
    )
    _, decoded = round_trip("s", update)
    assert not isinstance(decoded, Creation)
    assert decoded(created.session) == update(created.session)


def test_what_is_not_data_is_left_out() -> None:
    def my_own(session: ProgressSession) -> Change:
        return ENGINE.heartbeat(session, now=datetime.now(UTC))

    not_engine = functools.partial(lambda session, now: my_own(session), now=datetime.now(UTC))
    heartbeat = functools.partial(ENGINE.heartbeat, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert encode_write("s", my_own) is None
    assert encode_write("s", not_engine) is None
    data, kept, left_out = encode_journal(
        STORE, [("s", my_own), ("s", heartbeat), ("s", not_engine)]
    )
    assert (kept, left_out) == (1, 2)
    [(_, decoded)] = decode_journal(data, STORE, ENGINE)
    assert as_data(decoded) == as_data(heartbeat)


def test_the_file_is_json_with_its_format_version_and_store() -> None:
    heartbeat = functools.partial(ENGINE.heartbeat, now=datetime(2025, 1, 1, tzinfo=UTC))
    data, _, _ = encode_journal(STORE, [("s", heartbeat)])
    document = json.loads(data)
    assert (document["format"], document["version"], document["store"]) == (
        JOURNAL_FORMAT,
        JOURNAL_VERSION,
        STORE,
    )
    assert document["writes"] == [
        {"session": "s", "call": "engine.heartbeat", "arguments": {"now": "2025-01-01T00:00:00Z"}}
    ]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"version": JOURNAL_VERSION + 1}, NotReadableHere),
        ({"store": "sqlite:////elsewhere.db"}, NotReadableHere),
        ({"format": "something else"}, UnreadableJournal),
        ({"version": "1"}, UnreadableJournal),
        ({"writes": {"s": 1}}, UnreadableJournal),
        (
            {"writes": [{"session": "s", "call": "celery.nothing", "arguments": {}}]},
            NotReadableHere,
        ),
        (
            {"writes": [{"session": "s", "call": "engine.heartbeat", "arguments": {}}]},
            UnreadableJournal,
        ),
        ({"writes": [{"session": 7, "call": "engine.heartbeat"}]}, UnreadableJournal),
    ],
)
def test_what_cannot_be_read_here_is_refused(
    change: dict[str, Any], error: type[Exception]
) -> None:
    heartbeat = functools.partial(ENGINE.heartbeat, now=datetime(2025, 1, 1, tzinfo=UTC))
    data, _, _ = encode_journal(STORE, [("s", heartbeat)])
    document = {**json.loads(data), **change}
    with pytest.raises(error):
        decode_journal(json.dumps(document).encode(), STORE, ENGINE)


def test_bytes_that_are_not_json_are_unreadable() -> None:
    with pytest.raises(UnreadableJournal):
        decode_journal(b"\x80not json", STORE, ENGINE)
    with pytest.raises(UnreadableJournal):
        decode_write(["s"], ENGINE)


def test_a_named_call_is_registered_once_with_its_arguments() -> None:
    with pytest.raises(ValueError, match="engine"):
        named_call("engine.mine", dict)
    with pytest.raises(KeyError):
        NamedCall("never.registered", ENGINE, None)
