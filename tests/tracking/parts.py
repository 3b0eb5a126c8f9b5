"""The tracker's collaborators wired by hand, for the unit tests of each one.

Memory store, local bus, fake clock: nothing runs in a thread unless a test
starts one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from celery_progress_mcp import InProgress, ProgressConfig, ProgressEvent
from celery_progress_mcp.bus.local import LocalBus
from celery_progress_mcp.core.engine import Change, Engine
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.testing import FakeClock
from celery_progress_mcp.tracking.committing import Committer
from celery_progress_mcp.tracking.held_updates import Pending
from celery_progress_mcp.tracking.shared_state import SharedState

__all__ = ["Parts"]


@dataclass
class Parts:
    """A store, a bus that records what it carries, and the write path's state."""

    config: ProgressConfig = field(default_factory=ProgressConfig)
    store: MemoryStore = field(default_factory=MemoryStore)
    bus: LocalBus = field(default_factory=LocalBus)
    clock: FakeClock = field(default_factory=FakeClock)
    published: list[ProgressEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = Engine(self.config)
        self.shared = SharedState(self.engine, self.clock, self.config.eta_smoothing)
        self.locks = self.shared.locks
        self.windows = self.shared.windows
        self.calls = self.shared.calls
        self.bus.subscribe(self.published.append)

    @functools.cached_property
    def committer(self) -> Committer:
        return Committer(
            self.shared,
            self.store,
            self.bus,
            max_active=self.config.max_concurrent_sessions,
            history_limit=self.config.max_history_snapshots,
            retry_in_background=False,
        )

    def running(self, session_id: str = "s1", percentage: float = 1.0) -> str:
        """A session created and updated through the committer."""
        change = self.engine.create(session_id=session_id, operation_id="op", now=self.clock.now())
        self.committer.create(change)
        self.committer.commit(session_id, self.update(percentage))
        return session_id

    def update(self, percentage: float) -> functools.partial[Change]:
        return functools.partial(
            self.engine.update, state=InProgress(percentage=percentage), now=self.clock.now()
        )

    def hold(self, session_id: str, percentage: float) -> Pending:
        """Make ``percentage`` the session's pending (coalesced) update."""
        window = self.windows.get(session_id)
        assert window is not None
        window.pending = Pending(InProgress(percentage=percentage), self.clock.monotonic(), 0.0)
        return window.pending
