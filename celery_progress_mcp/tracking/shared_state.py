"""The in-memory state a tracker's collaborators share, made anew after a fork.

The locks (see :mod:`.locks`), what this process holds back from the store
per session (see :mod:`.held_updates`), and every session's ETA estimator
with the engine calls that write held updates (see :mod:`.update_calls`);
with the engine and the clock they are checked and dated with.
"""

from __future__ import annotations

from ..core.clock import Clock
from ..core.engine import Engine
from .held_updates import Windows
from .locks import TrackerLocks
from .update_calls import UpdateCalls

__all__ = ["SharedState"]


class SharedState:
    """See the module's docstring."""

    __slots__ = ("calls", "clock", "engine", "locks", "windows")

    def __init__(self, engine: Engine, clock: Clock, eta_smoothing: float) -> None:
        self.engine = engine
        self.clock = clock
        self.locks = TrackerLocks()
        self.windows = Windows()
        self.calls = UpdateCalls(engine, clock, eta_smoothing)
