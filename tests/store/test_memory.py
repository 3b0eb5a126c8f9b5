"""MemoryStore: what is its own. The Store port's rules, which the memory store
defines, are tested on every store (memory included) in test_store_port.py."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from celery_progress_mcp import InProgress, ProgressConfig
from celery_progress_mcp.core.engine import Engine
from celery_progress_mcp.store.memory import MemoryStore

NOW = datetime(2025, 6, 18, tzinfo=UTC)
ENGINE = Engine(ProgressConfig(granularity_level="Verbose"))
HISTORY = 10


def test_the_event_log_is_bounded() -> None:
    store = MemoryStore(max_logged_events=10)
    store.create(
        ENGINE.create(session_id="a", operation_id="op", now=NOW),
        max_active=10,
        history_limit=HISTORY,
    )
    for percentage in range(1, 60):
        mutation = functools.partial(
            ENGINE.update, state=InProgress(percentage=percentage / 2), now=NOW
        )
        store.apply("a", mutation, history_limit=HISTORY)
    logged = store.events_since(0, limit=1000)
    assert len(logged) <= 20
    assert logged[-1].seq == store.last_seq()
