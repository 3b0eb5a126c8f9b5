"""Progress notices: strictly increasing, the right total and message, paced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from celery_progress_mcp.core.models import ProgressEvent, ProgressEventType
from celery_progress_mcp.mcp.progress_notices import Pacer, ProgressMapper, ProgressNotice

E = ProgressEventType
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(kind: ProgressEventType = E.PROGRESS_UPDATED, seq: int = 1, **data: Any) -> ProgressEvent:
    data.setdefault("status", "in_progress")
    return ProgressEvent(
        seq=seq, session_id="s", operation_id="op", event_type=kind, timestamp=_NOW, data=data
    )


@given(st.lists(st.floats(min_value=0, max_value=100), max_size=40))
def test_progress_strictly_increases_whatever_the_percentages_do(percentages: list[float]) -> None:
    mapper = ProgressMapper()
    sent = [mapper.observe(event(percentage=p)) for p in percentages]
    values = [n.progress for n in sent if n is not None]
    assert values == sorted(set(values))
    # each new high is sent, and nothing else (a bare 0 % start is no progress)
    highs = [p for i, p in enumerate(percentages) if p > max(percentages[:i], default=0.0)]
    assert values == highs


def test_total_is_100_for_percentages_and_total_steps_where_the_task_counts_steps() -> None:
    percent = ProgressMapper()
    assert percent.observe(event(percentage=25.0)) == ProgressNotice(25.0, 100.0, None)
    steps = ProgressMapper()
    notice = steps.observe(event(percentage=60.0, total_steps=5, current_step_number=3))
    assert notice == ProgressNotice(3.0, 5.0, None)
    # the unit chosen first stays, so progress stays comparable
    later = percent.observe(event(percentage=80.0, total_steps=5, current_step_number=4))
    assert later == ProgressNotice(80.0, 100.0, None)


def test_the_message_is_the_current_step_and_at_verbose_the_sub_operation() -> None:
    plain = ProgressMapper()
    verbose = ProgressMapper(with_sub_operations=True)
    started = event(
        E.SUB_OPERATION_STARTED,
        percentage=5.0,
        sub_operation_id="dl",
        sub_operation_name="download",
        sub_operation_state="active",
    )
    step = event(percentage=10.0, current_step="fetching")
    for mapper in (plain, verbose):
        mapper.observe(started)
    assert plain.observe(step) == ProgressNotice(10.0, 100.0, "fetching")
    assert verbose.observe(step) == ProgressNotice(10.0, 100.0, "fetching / download")


def test_nothing_while_queued_or_for_an_ending_other_than_completion() -> None:
    mapper = ProgressMapper()
    assert mapper.observe(event(E.SESSION_CREATED, status="initializing", percentage=0.0)) is None
    assert mapper.observe(event(E.SESSION_FAILED, status="failed", percentage=50.0)) is None
    assert mapper.observe(event(E.SESSION_CANCELLED, status="cancelled", percentage=50.0)) is None
    completed = mapper.observe(event(E.SESSION_COMPLETED, status="completed", percentage=100.0))
    assert completed == ProgressNotice(100.0, 100.0, None)


def test_the_pacer_sends_one_per_window_and_keeps_the_latest_for_its_end() -> None:
    pacer = Pacer(0.5)
    first, second, third = (ProgressNotice(float(i), 100.0, None) for i in (1, 2, 3))
    assert pacer.offer(first, 10.0) is first
    assert pacer.offer(second, 10.1) is None
    assert pacer.offer(third, 10.2) is None
    wait = pacer.wait_s(10.2)
    assert wait is not None
    assert abs(wait - 0.3) < 1e-9
    assert pacer.due(10.4) is None
    assert pacer.due(10.5) is third
    assert pacer.due(10.6) is None
    assert pacer.offer(first, 10.7) is None
    assert pacer.drain() is first
    assert pacer.drain() is None


def test_a_zero_window_sends_everything() -> None:
    pacer = Pacer(0.0)
    notices = [ProgressNotice(float(i), 100.0, None) for i in range(5)]
    assert [pacer.offer(n, 1.0) for n in notices] == notices
