"""``KombuBus``: events over a fanout exchange of the Celery broker.

Every process that shares a store publishes its committed events, as JSON,
to one fanout exchange; a subscriber in any process on any machine gets
them from its own exclusive, auto-deleted queue bound to that exchange.

What a subscriber sees is the store's event log in sequence order, with no
gap, whatever the broker does:

* messages of concurrent publishers can arrive out of order (two processes
  commit seq 10 and 11 and publish in the other order): an early arrival
  waits for its predecessors for ``reorder_grace_s``;
* a message can be lost (a broker restart drops Redis pub/sub messages, a
  publisher dies between commit and publish): a gap that outlives the grace,
  and a tail that nothing follows, are filled from the store's log
  (``backfill``), checked every ``poll_interval_s`` while the broker is quiet;
* a transport without fanout (``sqla+``) is not used at all: the bus then
  polls the store's log (``poll_interval_s``), so subscribers still see every
  event, only later.

The bus composes a :class:`~.publisher.KombuPublisher` (a queue and the
thread that sends it), a :class:`~.consumer.KombuConsumer` (the thread that
receives, through a :class:`~.reorder.ReorderBuffer`) and the subscribers'
callbacks. Publishing never blocks the caller on the broker. Threads and
connections start on first use, so creating a bus before a ``fork`` is
safe, and :meth:`KombuBus.after_fork` makes it usable in the child.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kombu import Connection, Exchange

from ..core.models import ProgressEvent
from .base import EventBus, EventCallback, Unsubscribe
from .consumer import KombuConsumer, LatestSeq
from .publisher import KombuPublisher
from .reorder import Backfill

__all__ = [
    "DEFAULT_EXCHANGE",
    "Backfill",
    "KombuBus",
    "LatestSeq",
    "transport_has_fanout",
]

logger = logging.getLogger(__name__)

#: Name of the fanout exchange (and prefix of the subscriber queues).
DEFAULT_EXCHANGE = "celery_progress.events"


def transport_has_fanout(connection: Connection) -> bool:
    """Whether the connection's transport delivers fanout exchanges across processes."""
    implements = getattr(connection.transport, "implements", None)
    types: frozenset[str] = getattr(implements, "exchange_type", frozenset())
    return "fanout" in types and connection.transport.driver_type != "memory"


class KombuBus(EventBus):
    """A gap-free, ordered event stream over a Celery broker's fanout exchange.

    ``connection``: a kombu Connection (``app.connection_for_write()``); the
    bus clones it for its consumer. ``connection_pool``: returns a kombu
    connection pool (``lambda: app.pool``) from which the publisher takes the
    connection it keeps; without one it keeps a clone of ``connection``.
    ``backfill`` and ``latest_seq`` read the shared store's event log.
    ``consume``: False makes a publish-only bus that starts no consumer until
    :meth:`start_consuming` is called (a worker process that nobody in it
    subscribes to needs none).
    """

    def __init__(
        self,
        connection: Connection,
        *,
        backfill: Backfill,
        latest_seq: LatestSeq,
        connection_pool: Callable[[], Any] | None = None,
        exchange: str = DEFAULT_EXCHANGE,
        poll_interval_s: float = 1.0,
        reorder_grace_s: float = 0.05,
        consume: bool = True,
    ) -> None:
        # Not auto-deleted: publishers cache their declarations, and an exchange
        # that vanished with its last queue would make their next publish fail.
        fanout_exchange = Exchange(exchange, type="fanout", durable=False, auto_delete=False)
        self._consume_on_subscribe = consume
        self._lock = threading.Lock()
        self._callbacks: tuple[EventCallback, ...] = ()
        self._closed = False
        self._publisher = KombuPublisher(connection, fanout_exchange, connection_pool)
        self._consumer = KombuConsumer(
            connection,
            fanout_exchange,
            deliver=self._deliver,
            backfill=backfill,
            latest_seq=latest_seq,
            fanout=transport_has_fanout(connection),
            poll_interval_s=poll_interval_s,
            reorder_grace_s=reorder_grace_s,
        )

    @property
    def fanout(self) -> bool:
        """Whether events go through the broker; False: subscribers poll the store's log."""
        return self._consumer.fanout

    @fanout.setter
    def fanout(self, value: bool) -> None:
        self._consumer.fanout = value

    @property
    def dropped(self) -> int:
        """Events dropped from a full publish queue (subscribers refill them from the store)."""
        return self._publisher.dropped

    @property
    def backfilled(self) -> int:
        """Events delivered from the store's log rather than the broker."""
        return self._consumer.backfilled

    # -- publishing ------------------------------------------------------------

    def publish(self, events: Sequence[ProgressEvent]) -> None:
        if not events or self._closed:
            return
        if not self.fanout:
            return  # subscribers poll the store; nothing to send
        if self._publisher.publish(events):
            _running_buses.add(self)

    def wait_published(self, timeout_s: float = 5.0) -> bool:
        """Wait until every event queued so far reached the broker; False on timeout."""
        return self._publisher.wait_published(timeout_s)

    # -- subscribing -------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Unsubscribe:
        with self._lock:
            self._callbacks = (*self._callbacks, callback)
        if self._consume_on_subscribe:
            self.start_consuming()

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks = tuple(cb for cb in self._callbacks if cb is not callback)

        return unsubscribe

    def start_consuming(self) -> None:
        """Start delivering events to the callbacks (idempotent)."""
        if self._closed:
            return
        if self._consumer.start():
            _running_buses.add(self)

    @property
    def consuming(self) -> bool:
        return self._consumer.running

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold deliveries while the block runs (to register a reader atomically)."""
        with self._consumer.holding():
            yield

    def _deliver(self, event: ProgressEvent) -> None:
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                logger.exception("progress event subscriber failed")

    # -- lifecycle -------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child, before any use: the parent's threads did not come along
        and its connections are let go without closing them; new locks; what the parent
        had queued to publish stays the parent's. The subscribers stay; the publisher
        thread starts again on the next publish, the consumer on :meth:`start_consuming`
        (or :meth:`subscribe`)."""
        self._lock = threading.Lock()
        self._publisher.after_fork()
        self._consumer.after_fork()
        _running_buses.discard(self)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (for up to ``timeout_s``), then stop both threads."""
        if self._closed:
            return
        self._publisher.wait_published(timeout_s)
        self._closed = True
        self._publisher.close()
        self._consumer.close()


#: Buses with threads running; closed when the interpreter exits, so queued
#: events are sent and subscriber queues unbound.
_running_buses: weakref.WeakSet[KombuBus] = weakref.WeakSet()


@atexit.register
def _close_running_buses() -> None:
    for bus in list(_running_buses):
        try:
            bus.close(timeout_s=2.0)
        except Exception:
            logger.debug("progress bus not closed at exit", exc_info=True)
