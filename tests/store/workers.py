"""Code that test processes run: a tracker of their own on a shared SQL store.

Module-level functions, so ``multiprocessing`` (spawn) can start them.
"""

from __future__ import annotations

from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

from celery_progress_mcp import (
    InProgress,
    ProgressConfig,
    ProgressTracker,
    SubOperationUpdate,
)
from celery_progress_mcp.store.sql import SqlStore

__all__ = ["KILL_SESSIONS", "STEPS_PER_MEMBER", "member", "steady_writer"]

#: Updates each member process applies to its own sub-operation.
STEPS_PER_MEMBER = 500
#: Sessions the writer that gets killed keeps updating.
KILL_SESSIONS = 4


def member(url: str, session_id: str, sub_id: str, go: Event) -> None:
    """Start sub-operation ``sub_id``, move it through every step, complete it."""
    store = SqlStore(url)
    tracker = ProgressTracker(
        ProgressConfig(update_interval_ms=0, granularity_level="Verbose"), store=store
    )
    go.wait(60)
    tracker.start_sub_operation(session_id, sub_id)
    for step in range(1, STEPS_PER_MEMBER + 1):
        tracker.update_sub_operation(session_id, sub_id, percentage=step * 100 / STEPS_PER_MEMBER)
    tracker.complete_sub_operation(session_id, sub_id)
    tracker.close()
    store.close()


def steady_writer(url: str, written: Synchronized[int]) -> None:
    """Update every session forever, each update carrying its number ``n``
    in the session's metadata, its sub-operation's metadata and percentage,
    and its snapshot, until the test kills the process."""
    store = SqlStore(url)
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    numbers = {}
    for index in range(KILL_SESSIONS):
        session_id = f"s{index}"
        session = store.get(session_id, with_history=False)
        numbers[session_id] = 0 if session is None else int(session.metadata["n"])
    while True:
        for session_id, n in numbers.items():
            n += 1
            numbers[session_id] = n
            tracker.update_progress(
                session_id,
                InProgress(percentage=n % 100),
                [SubOperationUpdate(id="x", percentage=n % 100, metadata={"n": n})],
                metadata={"n": n},
            )
            with written.get_lock():
                written.value += 1
