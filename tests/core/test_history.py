"""History thinning: bounded, first and latest kept, the rest evenly spread."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from celery_progress_mcp import Initializing, ProgressSnapshot
from celery_progress_mcp.core.history import append_snapshot, is_kept, stride_for

NOW = datetime(2025, 6, 18, tzinfo=UTC)


def snapshot(index: int) -> ProgressSnapshot:
    return ProgressSnapshot(timestamp=NOW, state=Initializing(), index=index)


def check_shape(indices: list[int], total: int, limit: int) -> None:
    assert len(indices) <= limit
    assert indices[0] == 0
    assert indices[-1] == total - 1
    assert indices == sorted(set(indices))
    # Evenly spread: every gap but the last (to the latest) is one stride.
    gaps = {b - a for a, b in itertools.pairwise(indices[:-1])}
    assert len(gaps) <= 1
    if gaps:
        (stride,) = gaps
        assert indices[-1] - indices[-2] <= stride


@given(total=st.integers(min_value=1, max_value=600), limit=st.integers(min_value=2, max_value=40))
def test_append_keeps_a_bounded_evenly_spread_timeline(total: int, limit: int) -> None:
    history: list[ProgressSnapshot] = []
    for index in range(total):
        append_snapshot(history, snapshot(index), limit)
        assert len(history) <= limit
    indices = [snap.index for snap in history]
    check_shape(indices, total, limit)
    # The same set the rule says is kept.
    assert indices == [i for i in range(total) if is_kept(i, total - 1, limit)]


@given(total=st.integers(min_value=1, max_value=2000), limit=st.integers(min_value=2, max_value=50))
def test_the_bound_is_used_well(total: int, limit: int) -> None:
    """Not merely bounded: at least about half the room holds snapshots."""
    kept = [i for i in range(total) if is_kept(i, total - 1, limit)]
    assert len(kept) <= limit
    assert len(kept) >= min(total, limit // 2)


def test_stride_is_one_while_everything_fits() -> None:
    assert stride_for(8, 10) == 1
    assert stride_for(100, 10) > 1
