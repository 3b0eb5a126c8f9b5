"""The engine's bounds on input: each refused or truncated text, UTF-8, strict
numbers, metadata keys (issue #15, "Input", points 1 and 2)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from celery_progress_mcp import (
    Cancelled,
    Completed,
    Failed,
    InProgress,
    InvalidProgress,
    Paused,
    ProgressConfig,
    ProgressSession,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)
from celery_progress_mcp.core.bounds import TRUNCATION_MARKER
from celery_progress_mcp.core.engine import Engine

NOW = datetime(2026, 1, 1, tzinfo=UTC)
README = Path(__file__).resolve().parents[2] / "README.md"
SURROGATE = "bad \udc80 text"


def engine(**fields: Any) -> Engine:
    return Engine(ProgressConfig(**fields))


def running(e: Engine) -> ProgressSession:
    session = e.create(session_id="s", operation_id="op", now=NOW).session
    session = e.add_sub_operations(session, [SubOperation(id="b", name="B")], now=NOW).session
    return e.update(session, InProgress(percentage=1.0), now=NOW).session


# -- refused past the bound -------------------------------------------------------

REFUSED: list[tuple[str, str, Callable[[Engine, str], object]]] = [
    (
        "operation_id",
        "max_id_chars",
        lambda e, text: e.create(session_id="s", operation_id=text, now=NOW),
    ),
    (
        "session_id",
        "max_id_chars",
        lambda e, text: e.create(session_id=text, operation_id="op", now=NOW),
    ),
    (
        "parent_id",
        "max_id_chars",
        lambda e, text: e.create(session_id="s", operation_id="op", parent_id=text, now=NOW),
    ),
    (
        "sub-operation id",
        "max_id_chars",
        lambda e, text: e.add_sub_operations(
            running(e), [SubOperation(id=text, name="n")], now=NOW
        ),
    ),
    (
        "the name of sub-operation 'x'",
        "max_name_chars",
        lambda e, text: e.add_sub_operations(
            running(e), [SubOperation(id="x", name=text)], now=NOW
        ),
    ),
    (
        "current_step",
        "max_step_chars",
        lambda e, text: e.update(running(e), InProgress(current_step=text), now=NOW),
    ),
]


@pytest.mark.parametrize(("what", "field", "call"), REFUSED, ids=[what for what, _, _ in REFUSED])
def test_past_its_bound_a_text_is_refused_naming_the_field_and_the_limit(
    what: str, field: str, call: Callable[[Engine, str], object]
) -> None:
    e = engine(**{field: 40})
    call(e, "x" * 40)  # at the bound: accepted
    with pytest.raises(InvalidProgress) as raised:
        call(e, "x" * 41)
    message = str(raised.value)
    assert what in message
    assert f"over the limit: at most 40 (ProgressConfig.{field})" in message


@pytest.mark.parametrize(("what", "field", "call"), REFUSED, ids=[what for what, _, _ in REFUSED])
def test_a_lone_surrogate_is_refused(
    what: str, field: str, call: Callable[[Engine, str], object]
) -> None:
    # Refused by the engine, or already by the model (pydantic checks a
    # constrained string's text), each naming the field.
    with pytest.raises(
        InvalidProgress, match=rf"({re.escape(what)} is not valid UTF-8|id: .*unicode)"
    ):
        call(engine(), SURROGATE)


def test_a_step_of_one_megabyte_is_refused() -> None:
    e = engine()
    with pytest.raises(InvalidProgress, match=r"current_step is 1048576 characters long"):
        e.update(running(e), InProgress(current_step="x" * 2**20), now=NOW)


def test_ids_and_names_may_not_hold_nul_on_any_store() -> None:
    with pytest.raises(InvalidProgress, match="NUL"):
        engine().create(session_id="a\x00b", operation_id="op", now=NOW)


# -- truncated past the bound -------------------------------------------------------

TRUNCATED: list[tuple[str, str, Callable[[Engine, str], Any]]] = [
    (
        "error_message",
        "max_error_chars",
        lambda e, text: e.fail(running(e), text, None, now=NOW).session.state.error_message,
    ),
    (
        "error_code",
        "max_error_chars",
        lambda e, text: e.fail(running(e), "m", text, now=NOW).session.state.error_code,
    ),
    (
        "result_summary",
        "max_result_summary_chars",
        lambda e, text: e.complete(running(e), text, now=NOW).session.state.result_summary,
    ),
    (
        "pause reason",
        "max_reason_chars",
        lambda e, text: e.pause(running(e), text, now=NOW).session.state.reason,
    ),
    (
        "cancel reason",
        "max_reason_chars",
        lambda e, text: e.cancel(running(e), text, now=NOW).session.state.reason,
    ),
    (
        "sub-operation error",
        "max_error_chars",
        lambda e, text: (
            e.change_sub_operation(
                running(e),
                SubOperationUpdate(id="b", state=SubOperationState.FAILED, error=text),
                now=NOW,
            )
            .session.sub_operations[0]
            .error
        ),
    ),
]


@pytest.mark.parametrize(("what", "field", "call"), TRUNCATED, ids=[w for w, _, _ in TRUNCATED])
def test_past_its_bound_a_text_recorded_as_a_task_ends_is_truncated_with_a_marker(
    what: str, field: str, call: Callable[[Engine, str], Any]
) -> None:
    e = engine(**{field: 100})
    assert call(e, "x" * 100) == "x" * 100
    cut = call(e, "y" * 5000)
    assert len(cut) == 100
    assert cut == "y" * (100 - len(TRUNCATION_MARKER)) + TRUNCATION_MARKER


@pytest.mark.parametrize(("what", "field", "call"), TRUNCATED, ids=[w for w, _, _ in TRUNCATED])
def test_in_a_truncated_text_a_lone_surrogate_and_nul_become_replacement_characters(
    what: str, field: str, call: Callable[[Engine, str], Any]
) -> None:
    assert call(engine(), "a\udc80b\x00c") == "a\ufffdb\ufffdc"


def test_the_events_carry_the_truncated_text() -> None:
    e = engine(max_reason_chars=64)
    change = e.cancel(running(e), "r" * 500, now=NOW)
    assert change.events[0].data["reason"] == change.session.state.reason  # type: ignore[union-attr]
    assert len(change.events[0].data["reason"]) == 64


@pytest.mark.parametrize(
    "state",
    [
        Paused(reason="p" * 2000),
        Cancelled(cancelled_at=NOW, reason="c" * 2000),
        Completed(completed_at=NOW, result_summary="r" * 9000),
        Failed(failed_at=NOW, error_message="e" * 9000, error_code="c" * 9000),
    ],
    ids=["paused", "cancelled", "completed", "failed"],
)
def test_a_state_given_to_update_is_bounded_too(state: Any) -> None:
    e = engine()
    new = e.update(running(e), state, now=NOW).session.state
    texts = [value for value in new.model_dump().values() if isinstance(value, str)]
    assert any(text.endswith(TRUNCATION_MARKER) for text in texts)
    assert all(len(text) <= 8192 for text in texts)


# -- metadata ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [{1: "a"}, {"outer": {2.5: "b"}}, {"list": [{None: 1}]}, {True: 1}],
    ids=["int", "nested float", "in a list", "bool"],
)
def test_a_metadata_key_that_is_not_a_string_is_refused(metadata: dict[Any, Any]) -> None:
    e = engine()
    with pytest.raises(InvalidProgress, match=r"metadata has the key .* keys must be strings"):
        e.update(running(e), InProgress(percentage=2.0), metadata=metadata, now=NOW)
    with pytest.raises(InvalidProgress, match="keys must be strings"):
        e.create(session_id="s", operation_id="op", metadata=metadata, now=NOW)


@pytest.mark.parametrize("metadata", [{"k": SURROGATE}, {SURROGATE: 1}, {"k": [SURROGATE]}])
def test_metadata_text_that_is_not_utf8_is_refused(metadata: dict[str, Any]) -> None:
    with pytest.raises(InvalidProgress, match="not valid UTF-8"):
        engine().create(session_id="s", operation_id="op", metadata=metadata, now=NOW)


def test_metadata_is_measured_in_utf8_bytes() -> None:
    e = engine(max_metadata_bytes=64)
    e.create(session_id="s", operation_id="op", metadata={"k": "é" * 27}, now=NOW)  # 62 bytes
    with pytest.raises(InvalidProgress, match=r"is 66 bytes as JSON, over the 64-byte limit"):
        e.create(session_id="s", operation_id="op", metadata={"k": "é" * 29}, now=NOW)


# -- strict numbers -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["50", True, False, b"50"], ids=repr)
@pytest.mark.parametrize(
    "build",
    [
        lambda v: InProgress(percentage=v),
        lambda v: Paused(paused_at_percentage=v),
        lambda v: SubOperationUpdate(id="b", percentage=v),
        lambda v: SubOperation(id="b", name="B", percentage=v),
        lambda v: SubOperation(id="b", name="B", weight=v),
    ],
    ids=["in progress", "paused", "sub-operation update", "sub-operation", "weight"],
)
def test_a_number_given_as_text_or_bool_is_refused(
    build: Callable[[Any], object], value: Any
) -> None:
    with pytest.raises(InvalidProgress, match="valid number"):
        build(value)


def test_an_int_is_a_percentage() -> None:
    assert InProgress(percentage=50).percentage == 50.0


@pytest.mark.parametrize("value", ["3", 3.0, True], ids=repr)
@pytest.mark.parametrize("field", ["total_steps", "current_step_number"])
def test_a_count_must_be_an_int(field: str, value: Any) -> None:
    with pytest.raises(InvalidProgress, match=rf"{field}: Input should be a valid integer"):
        InProgress(**{field: value})


def test_a_step_number_past_its_total_is_refused() -> None:
    InProgress(current_step_number=2, total_steps=2)
    with pytest.raises(InvalidProgress, match="current_step_number 10 is past total_steps 2"):
        InProgress(current_step_number=10, total_steps=2)


def test_the_engine_refuses_a_step_past_its_total_even_in_a_trusted_state() -> None:
    # TaskProgress builds its states without validation.
    state = InProgress.trusted(
        status="in_progress",
        percentage=None,
        current_step=None,
        total_steps=2,
        current_step_number=10,
        eta_seconds=None,
    )
    e = engine()
    with pytest.raises(InvalidProgress, match="past total_steps"):
        e.update(running(e), state, now=NOW)


# -- documented ---------------------------------------------------------------------------


def test_every_setting_is_in_the_readmes_configuration_table() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [name for name in ProgressConfig.model_fields if f"| `{name}` |" not in readme]
    assert missing == []
