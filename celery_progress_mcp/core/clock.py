"""The Clock port: time, behind a small base class so tests can drive it.

A real clock (``SystemClock``) moves by itself and the tracker runs its own
timer threads against it. A manual clock (``testing.FakeClock``) moves only
when told: the tracker then starts no timer thread and runs what came due
each time the clock is advanced (``on_advance``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

__all__ = ["Clock", "SystemClock", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """Base class of clocks: wall time for timestamps, monotonic seconds for windows."""

    #: True for a clock that moves only when told: no timer threads run
    #: against it, and what comes due runs from ``on_advance`` listeners.
    manual: ClassVar[bool] = False

    def now(self) -> datetime:
        raise NotImplementedError

    def monotonic(self) -> float:
        raise NotImplementedError

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` each time the clock is moved by hand.

        A clock that moves by itself never does: the default keeps nothing.
        """


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
