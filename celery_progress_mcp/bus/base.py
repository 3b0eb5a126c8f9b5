"""The EventBus port: the fast path that carries committed events to subscribers.

The store is the source of truth; a bus may drop or reorder under failure, and
subscribers repair from the store's event log by sequence number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..core.models import ProgressEvent

__all__ = ["EventBus", "EventCallback", "Unsubscribe"]

#: Receives each event; must be quick and must not raise (errors are logged).
EventCallback = Callable[[ProgressEvent], None]
#: Returned by ``subscribe``; calling it stops the deliveries.
Unsubscribe = Callable[[], None]


class EventBus:
    """Base class of event buses.

    ``publish`` and ``subscribe`` are the port; the other methods are hooks
    that only some buses need, and do nothing here.
    """

    def publish(self, events: Sequence[ProgressEvent]) -> None:
        raise NotImplementedError

    def subscribe(self, callback: EventCallback) -> Unsubscribe:
        raise NotImplementedError

    def start_consuming(self) -> None:
        """Start receiving events published by other processes (idempotent).

        A bus that only carries events within its process has nothing to start.
        """

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold deliveries to callbacks while the block runs.

        A reader registers and reads up from the store's log inside it, so no
        event falls in between. A bus that delivers in the publisher's thread
        (under the publisher's own lock) has nothing to hold.
        """
        yield

    def after_fork(self) -> None:
        """In a forked child, before any use: let go of the parent's threads
        and connections without closing them (they are the parent's)."""

    def close(self) -> None:
        """Release resources; the base class holds none."""
