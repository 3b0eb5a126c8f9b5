"""The subscription hub: a tracker's subscriptions, joined from the log, fed by the bus.

Every event the bus delivers (from this process, or from every process
sharing the broker) is fanned out to the subscriptions, each of which takes
what matches its filters. A subscription joining reads up from the store's
event log first (from ``since``, or from the log's end), with the bus's
deliveries held and this process's commits waiting (see :mod:`.locks`), so
no event falls in between; one that comes both ways is taken once, by its
sequence number.
"""

from __future__ import annotations

from collections.abc import Collection

from ..bus.base import EventBus
from ..core.bounds import lookup_text
from ..core.models import ProgressEvent, ProgressEventType
from ..store.base import Store
from .locks import TrackerLocks
from .subscription import Subscription

__all__ = ["SubscriptionHub"]


class SubscriptionHub:
    """Subscriptions of one tracker; ``fan_out`` is the bus's callback."""

    def __init__(
        self, store: Store, bus: EventBus, locks: TrackerLocks, *, buffer_size: int, enabled: bool
    ) -> None:
        self._store = store
        self._bus = bus
        self._locks = locks
        self._buffer_size = buffer_size
        #: A disabled tracker's hub hands out closed subscriptions.
        self._enabled = enabled
        #: Replaced, never changed in place: ``fan_out`` reads it without a lock.
        self._subscriptions: tuple[Subscription, ...] = ()

    def subscribe(
        self,
        *,
        session_id: str | None = None,
        event_types: Collection[ProgressEventType | str] | None = None,
        since: int | None = None,
    ) -> Subscription:
        """Events from now on or, with ``since``, from the log after that sequence number."""
        lookup_text(session_id, "session_id")
        subscription = Subscription(
            buffer_size=self._buffer_size,
            session_id=session_id,
            event_types=event_types,
            on_close=self._drop,
        )
        if not self._enabled:
            subscription.close()
            return subscription
        self._bus.start_consuming()
        with self._bus.holding(), self._locks.commit, self._locks.state:
            self._replay(subscription, self._store.last_seq() if since is None else since)
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def _replay(self, subscription: Subscription, since: int) -> None:
        cursor = since
        subscription.last_seq = since
        while True:
            page = self._store.events_since(cursor, session_id=subscription.session_id)
            if not page:
                return
            for event in page:
                subscription.push(event)
            cursor = page[-1].seq

    def _drop(self, subscription: Subscription) -> None:
        with self._locks.state:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def fan_out(self, event: ProgressEvent) -> None:
        for subscription in self._subscriptions:
            subscription.push(event)

    def close(self) -> None:
        """Close every subscription (their readers see the end)."""
        for subscription in self._subscriptions:
            subscription.close()

    def after_fork(self, locks: TrackerLocks) -> None:
        """In a forked child: the parent's subscriptions stay the parent's; the
        hub (still the bus's callback) goes on with the child's locks."""
        self._locks = locks
        self._subscriptions = ()
