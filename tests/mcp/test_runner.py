"""TaskRunner.follow when the bus is slower than the store (or drops events).

The worker's tracker and the server's share a store but not a bus, so the
server's tracker sees the session end by polling the store before (here:
instead of) the bus brings the last events: every progress notice must
still be sent, in order, before the outcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
from celery_progress_mcp.mcp import ProgressNotice, RunOptions, TaskRunner
from celery_progress_mcp.store.memory import MemoryStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def trackers() -> Iterator[tuple[ProgressTracker, ProgressTracker]]:
    store = MemoryStore()
    config = ProgressConfig(update_interval_ms=0)
    with (
        ProgressTracker(config, store=store) as worker,
        ProgressTracker(config, store=store) as server,
    ):
        yield worker, server


async def test_an_end_seen_by_polling_still_sends_every_notice_the_bus_did_not_bring(
    trackers: tuple[ProgressTracker, ProgressTracker],
) -> None:
    worker, server = trackers
    app = Celery("runner-test", broker="memory://", set_as_current=False)  # no result backend
    runner = TaskRunner(app, server, options=RunOptions(poll_interval_s=0.05))
    task_id = "task-1"
    subscription = await runner.subscribe(task_id)
    worker.create_session("demo.count", session_id=task_id)
    for i in range(1, 6):
        step = InProgress(
            percentage=20.0 * i, current_step=f"step {i}", total_steps=5, current_step_number=i
        )
        worker.update_progress(task_id, step)
    worker.complete_session(task_id, "counted to 5")
    worker.flush()
    notices: list[ProgressNotice] = []

    async def sink(notice: ProgressNotice) -> None:
        notices.append(notice)

    try:
        outcome = await runner.follow(task_id, subscription, sink)
    finally:
        subscription.close()
    assert outcome.ok
    assert [n.progress for n in notices] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [n.message for n in notices] == [f"step {i}" for i in range(1, 6)]
    assert all(n.total == 5.0 for n in notices)


async def test_events_already_handled_are_not_sent_again(
    trackers: tuple[ProgressTracker, ProgressTracker],
) -> None:
    worker, server = trackers
    app = Celery("runner-test", broker="memory://", set_as_current=False)
    # The server's tracker shares the worker's events up to step 2 only.
    runner = TaskRunner(app, worker, options=RunOptions(poll_interval_s=0.05))
    task_id = "task-2"
    subscription = await runner.subscribe(task_id)
    worker.create_session("demo.count", session_id=task_id)
    for i in (1, 2):
        worker.update_progress(task_id, InProgress(percentage=25.0 * i, current_step=f"s{i}"))
    notices: list[ProgressNotice] = []

    async def sink(notice: ProgressNotice) -> None:
        notices.append(notice)
        if len(notices) == 2:
            # The rest is written where this tracker's bus does not see it.
            for i in (3, 4):
                server.update_progress(
                    task_id, InProgress(percentage=25.0 * i, current_step=f"s{i}")
                )
            server.complete_session(task_id, "done")
            server.flush()

    try:
        outcome = await runner.follow(task_id, subscription, sink)
    finally:
        subscription.close()
    assert outcome.ok
    assert [n.progress for n in notices] == [25.0, 50.0, 75.0, 100.0]
    assert [n.message for n in notices] == ["s1", "s2", "s3", "s4"]
