"""Property: the integration's queued writes are data, and come back from a journal as
they went in.

A task's start, a revoked task's end, a member's change in its group and a
group's seal are ``NamedCall``s: a registered name and a frozen dataclass of
arguments. Through a journal file's bytes each comes back with the same name
and equal arguments, and does what the original does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from celery_progress_mcp import ProgressConfig, SubOperationState
from celery_progress_mcp.celery.canvas import (
    Member,
    MemberChange,
    member_mutation,
    seal_mutation,
)
from celery_progress_mcp.celery.lifecycle import revoke_mutation, start_mutation
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.store.base import Mutation, Write
from celery_progress_mcp.tracking.journal_codec import decode_journal, encode_journal
from celery_progress_mcp.tracking.named_calls import NamedCall
from tests.core.strategies import json_objects, percentages, texts, timestamps

ENGINE = Engine(ProgressConfig())
STORE = "sqlite+pysqlite:////var/lib/app/progress.sqlite3"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

task_ids = st.text(min_size=1, max_size=12).filter(lambda text: text.strip() and "\x00" not in text)
members = st.builds(
    Member,
    id=task_ids,
    name=texts,
    weight=st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
    index=st.integers(min_value=0, max_value=10**6),
)
member_changes = st.builds(
    MemberChange,
    member=members,
    state=st.none() | st.sampled_from(SubOperationState),
    percentage=st.none() | percentages,
    error=st.none() | texts,
)
calls = st.one_of(
    st.builds(
        lambda now, attempt, metadata: start_mutation(ENGINE, now, attempt, metadata),
        timestamps,
        st.integers(min_value=1, max_value=1000),
        json_objects,
    ),
    st.builds(
        lambda reason, details, now: revoke_mutation(ENGINE, reason, details, now),
        texts,
        st.dictionaries(texts, st.booleans(), max_size=3),
        timestamps,
    ),
    st.builds(lambda change, now: member_mutation(ENGINE, change, now), member_changes, timestamps),
    st.builds(
        lambda group, callback, now: seal_mutation(ENGINE, group, callback, now),
        st.lists(members, max_size=4),
        st.none() | members,
        timestamps,
    ),
)


def _round_trip(session_id: str, write: Write) -> Write:
    data, kept, left_out = encode_journal(STORE, [(session_id, write)])
    assert (kept, left_out) == (1, 0)
    [(decoded_id, decoded)] = decode_journal(data, STORE, ENGINE)
    assert decoded_id == session_id
    return decoded


@given(task_ids, calls)
def test_a_named_call_comes_back_as_it_went_in(session_id: str, call: Mutation) -> None:
    assert isinstance(call, NamedCall)
    decoded = _round_trip(session_id, call)
    assert isinstance(decoded, NamedCall)
    assert (decoded.name, decoded.arguments, decoded.engine) == (
        call.name,
        call.arguments,
        call.engine,
    )


def test_a_decoded_start_and_member_change_do_what_the_originals_do() -> None:
    task = ENGINE.create(session_id="task", operation_id="proj.import", now=NOW).session
    start = start_mutation(ENGINE, NOW, 1, {"celery_worker": "w1@host", "celery_pid": 42})
    assert _round_trip("task", start)(task) == start(task)

    group = ENGINE.create(session_id="group", operation_id="group", now=NOW).session
    member = Member("task", "proj.import", 2.0, 3)
    sealed = seal_mutation(ENGINE, [member], None, NOW)
    sealed_group = sealed(group).session
    assert _round_trip("group", sealed)(group) == sealed(group)
    done = member_mutation(ENGINE, MemberChange(member, SubOperationState.COMPLETED, 100.0), NOW)
    assert _round_trip("group", done)(sealed_group) == done(sealed_group)

    revoke = revoke_mutation(ENGINE, "revoked", {"celery_revoked": True}, NOW)
    assert _round_trip("task", revoke)(task) == revoke(task)
