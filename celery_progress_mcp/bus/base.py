"""The EventBus port: the fast path that carries committed events to subscribers.

The store is the source of truth; a bus may drop or reorder under failure, and
subscribers repair from the store's event log by sequence number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core.models import ProgressEvent

__all__ = ["EventBus", "EventCallback", "Unsubscribe"]

#: Receives each event; must be quick and must not raise (errors are logged).
EventCallback = Callable[[ProgressEvent], None]
#: Returned by ``subscribe``; calling it stops the deliveries.
Unsubscribe = Callable[[], None]


class EventBus:
    """Base class of event buses."""

    def publish(self, events: Sequence[ProgressEvent]) -> None:
        raise NotImplementedError

    def subscribe(self, callback: EventCallback) -> Unsubscribe:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; the base class holds none."""
