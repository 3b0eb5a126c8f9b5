"""History thinning: a bounded timeline that keeps its shape.

A snapshot's ``index`` is its position in the whole timeline. With the latest
index ``n`` and a bound ``max_snapshots``, the kept snapshots are those whose
index is a multiple of a power-of-two stride (chosen as small as fits), plus
the latest. So the first (index 0) and the latest are always kept, and the
rest are evenly spread, however long the session runs. Stores apply the same
rule: the memory store on its list, the SQL store with one DELETE.
"""

from __future__ import annotations

from .models import ProgressSnapshot

__all__ = ["append_snapshot", "is_kept", "stride_for"]


def stride_for(latest_index: int, max_snapshots: int) -> int:
    """The smallest power-of-two stride that keeps at most ``max_snapshots``.

    Kept are the multiples of the stride in ``[0, latest]`` plus the latest:
    ``latest // stride + 2`` at most, which is within the bound exactly when
    ``stride > latest // (max_snapshots - 1)``.
    """
    return 1 << (latest_index // (max_snapshots - 1)).bit_length()


def is_kept(index: int, latest_index: int, max_snapshots: int) -> bool:
    return index == latest_index or index % stride_for(latest_index, max_snapshots) == 0


def append_snapshot(
    history: list[ProgressSnapshot], snapshot: ProgressSnapshot, max_snapshots: int
) -> None:
    """Append ``snapshot`` to ``history`` in place and thin it.

    ``snapshot.index`` must follow the last one's. Amortised O(1): a full pass
    happens only when the stride doubles.
    """
    if history:
        stride = stride_for(snapshot.index, max_snapshots)
        previous = history[-1].index
        if stride == stride_for(previous, max_snapshots):
            if previous % stride != 0:
                history.pop()
        else:
            history[:] = [snap for snap in history if snap.index % stride == 0]
    history.append(snapshot)
