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

Publishing never blocks the caller on the broker: events are queued (bounded;
on overflow the oldest are dropped and counted, since the store has them and
subscribers repair gaps) and a publisher thread sends them in order, over a
producer of the connection pool it is given (the Celery app's). Threads and
connections start on first use, so creating a bus before a ``fork`` is safe.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kombu import Connection, Consumer, Exchange, Queue
from kombu.message import Message

from ..core.models import ProgressEvent
from .base import EventBus, EventCallback, Unsubscribe

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
#: Events of the store's log with ``seq`` greater than the argument, oldest first.
Backfill = Callable[[int], Sequence[ProgressEvent]]
#: The highest sequence number in the store's log.
LatestSeq = Callable[[], int]

#: Events queued for the publisher thread before the oldest are dropped.
PUBLISH_QUEUE_SIZE = 10_000
#: Longest pause between reconnection attempts.
RECONNECT_MAX_S = 5.0
#: Subscriber queues of dead processes expire on RabbitMQ after this long unused.
QUEUE_EXPIRES_S = 60.0
#: The filesystem transport polls its folder; this is how often the bus's does.
FILESYSTEM_POLL_S = 0.02


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
        self._connection = connection
        self._connection_pool = connection_pool
        self._publishing: tuple[Any, Any, Any] | None = None
        self._backfill = backfill
        self._latest_seq = latest_seq
        # Not auto-deleted: publishers cache their declarations, and an exchange
        # that vanished with its last queue would make their next publish fail.
        self._exchange = Exchange(exchange, type="fanout", durable=False, auto_delete=False)
        self._poll_interval_s = poll_interval_s
        self._reorder_grace_s = reorder_grace_s
        self._consume_on_subscribe = consume
        self.fanout = transport_has_fanout(connection)

        self._lock = threading.Lock()
        self._callbacks: tuple[EventCallback, ...] = ()
        self._closed = False
        #: Held while events are handed to callbacks; see :meth:`holding`.
        self._delivery_lock = threading.RLock()

        self._outbox: collections.deque[ProgressEvent] = collections.deque()
        self._outbox_ready = threading.Condition(threading.Lock())
        self._publisher: threading.Thread | None = None
        self._in_flight = 0
        #: Events dropped from a full publish queue (subscribers refill them from the store).
        self.dropped = 0

        self._consumer: threading.Thread | None = None
        self._stop = threading.Event()
        self._next_seq: int | None = None
        self._early: dict[int, ProgressEvent] = {}
        self._gap_since_s: float | None = None
        #: Events delivered from the store's log rather than the broker.
        self.backfilled = 0

    # -- publishing ------------------------------------------------------------

    def publish(self, events: Sequence[ProgressEvent]) -> None:
        if not events or self._closed:
            return
        if not self.fanout:
            return  # subscribers poll the store; nothing to send
        with self._outbox_ready:
            overflow = len(self._outbox) + len(events) - PUBLISH_QUEUE_SIZE
            for _ in range(max(0, overflow)):
                self._outbox.popleft()
                self.dropped += 1
            self._outbox.extend(events)
            if self._publisher is None:
                self._publisher = threading.Thread(
                    target=self._publish_loop, name="celery-progress-publisher", daemon=True
                )
                self._publisher.start()
                _running_buses.add(self)
            self._outbox_ready.notify()

    def _publish_loop(self) -> None:
        backoff_s = 0.05
        while True:
            with self._outbox_ready:
                while not self._outbox and not self._closed:
                    self._outbox_ready.wait()
                if not self._outbox:
                    return  # closed and drained
                batch = list(self._outbox)
                self._outbox.clear()
                self._in_flight = len(batch)
            try:
                self._send(batch)
                backoff_s = 0.05
            except Exception as exc:
                logger.warning("progress events not sent to the broker: %s", exc)
                if self._closed:
                    return
                time.sleep(backoff_s)
                backoff_s = min(RECONNECT_MAX_S, backoff_s * 2)
            finally:
                with self._outbox_ready:
                    self._in_flight = 0
                    self._outbox_ready.notify_all()

    def _send(self, batch: Sequence[ProgressEvent]) -> None:
        if not self.fanout:
            return
        producer, batching = self._producer()
        try:
            for event in batch:
                producer.publish(
                    event.model_dump(mode="json"),
                    exchange=self._exchange,
                    routing_key="progress",
                    serializer="json",
                    declare=[self._exchange],
                    delivery_mode=1,
                    retry=False,  # the publish loop backs off and reconnects itself
                )
            if batching is not None:
                batching.flush()
        except Exception as exc:
            self._drop_producer(exc)
            raise

    def _producer(self) -> tuple[Any, Any]:
        """The publisher thread's producer, and its open batch where kombu has one.

        Taking a producer from a pool for each batch would open a channel
        each time, and kombu's Redis transport makes a client per fanout
        publish (about a millisecond each): the thread holds one connection
        of the pool and keeps one batch open on it (kombu >= 5.6; a Redis
        pipeline, flushed after each group of events), until an error makes
        it start over.
        """
        if self._publishing is None:
            pool = self._connection_pool() if self._connection_pool is not None else None
            connection = (
                pool.acquire(block=True, timeout=5)
                if pool is not None
                else self._connection.clone()
            )
            producer = connection.Producer()
            batching = None
            if hasattr(producer, "batch"):
                batching = producer.batch(max_size=PUBLISH_QUEUE_SIZE)
                batching.__enter__()
            self._publishing = (connection, producer, batching)
        return self._publishing[1], self._publishing[2]

    def _drop_producer(self, error: BaseException | None = None) -> None:
        held, self._publishing = self._publishing, None
        if held is None:
            return
        connection, _, batching = held
        try:
            if batching is not None:
                if error is None:
                    batching.__exit__(None, None, None)
                else:
                    batching.__exit__(type(error), error, error.__traceback__)
        except Exception:
            logger.debug("could not close the publisher's batch", exc_info=True)
        try:
            connection.release()
        except Exception:
            logger.debug("could not release the publisher's connection", exc_info=True)

    def wait_published(self, timeout_s: float = 5.0) -> bool:
        """Wait until every event queued so far reached the broker; False on timeout."""
        deadline_s = time.monotonic() + timeout_s
        with self._outbox_ready:
            while self._outbox or self._in_flight:
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0 or self._publisher is None:
                    return False
                self._outbox_ready.wait(remaining_s)
        return True

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
        with self._lock:
            if self._consumer is not None or self._closed:
                return
            try:
                self._next_seq = self._latest_seq() + 1
            except Exception as exc:  # the store is down: start from the first event seen
                logger.warning("progress event log not readable: %s", exc)
                self._next_seq = None
            self._consumer = threading.Thread(
                target=self._consume_loop, name="celery-progress-consumer", daemon=True
            )
            self._consumer.start()
            _running_buses.add(self)

    @property
    def consuming(self) -> bool:
        return self._consumer is not None

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold deliveries while the block runs (to register a reader atomically)."""
        with self._delivery_lock:
            yield

    def _consume_loop(self) -> None:
        backoff_s = 0.05
        while not self._stop.is_set():
            if not self.fanout:
                self._catch_up()
                self._stop.wait(self._poll_interval_s)
                continue
            try:
                self._consume_broker()
                backoff_s = 0.05
            except Exception as exc:
                if self._stop.is_set():
                    return
                logger.warning("progress event consumer lost the broker: %s", exc)
                self._catch_up()  # what the broker lost meanwhile, from the store
                self._stop.wait(backoff_s)
                backoff_s = min(RECONNECT_MAX_S, backoff_s * 2)

    def _consume_broker(self) -> None:
        options = dict(self._connection.transport_options or {})
        if self._connection.transport.driver_type == "filesystem":
            options["polling_interval"] = FILESYSTEM_POLL_S
        with self._connection.clone(transport_options=options) as connection:
            connection.ensure_connection(max_retries=1)
            if connection.transport.driver_type == "filesystem":
                self._unbind_dead_queues(connection)
            queue = Queue(
                f"{self._queue_prefix()}{os.getpid()}.{uuid.uuid4().hex[:12]}",
                exchange=self._exchange,
                routing_key="progress",
                durable=False,
                auto_delete=True,
                exclusive=connection.transport.driver_type == "amqp",
                queue_arguments={"x-expires": int(QUEUE_EXPIRES_S * 1000)}
                if connection.transport.driver_type == "amqp"
                else None,
            )
            try:
                with Consumer(
                    connection,
                    queues=[queue],
                    callbacks=[self._on_message],
                    accept=["json"],
                    no_ack=True,
                ):
                    self._catch_up()  # whatever was committed before the queue existed
                    quiet_since_s = time.monotonic()
                    while not self._stop.is_set():
                        try:
                            connection.drain_events(timeout=self._tick_s())
                            quiet_since_s = time.monotonic()
                        except TimeoutError:  # socket.timeout is TimeoutError
                            pass
                        except ValueError as exc:
                            # An unreadable message (the filesystem transport can
                            # hand over a file before its writer filled it): it is
                            # lost to the broker, not to the store.
                            logger.debug("unreadable progress event message: %s", exc)
                            self._gap_since_s = self._gap_since_s or time.monotonic()
                        now_s = time.monotonic()
                        if self._gap_since_s is not None and (
                            now_s - self._gap_since_s >= self._reorder_grace_s
                        ):
                            self._catch_up()
                        elif now_s - quiet_since_s >= self._poll_interval_s:
                            self._catch_up()  # a lost tail: nothing came after it
                            quiet_since_s = now_s
            finally:
                # kombu's virtual transports do not delete an auto-delete queue
                # when its consumer goes: unbind it, or events pile up for it.
                with contextlib.suppress(Exception):
                    queue(connection.default_channel).delete()

    def _queue_prefix(self) -> str:
        """Subscriber queues are named ``<exchange>.<host>.<pid>.<random>``."""
        return f"{self._exchange.name}.{socket.gethostname()}."

    def _unbind_dead_queues(self, connection: Connection) -> None:
        """Forget the queues of this host's subscribers that died without unbinding.

        A filesystem "queue" is a name in the exchange's table; a subscriber
        killed before it could unbind would otherwise have every event
        written out for it for ever. Its process id is in the queue's name.
        """
        prefix = self._queue_prefix()
        try:
            channel = connection.default_channel
            for binding in channel.get_table(self._exchange.name):
                name = binding.queue
                if not name.startswith(prefix):
                    continue
                pid_text = name[len(prefix) :].split(".", 1)[0]
                if pid_text.isdigit() and not _process_alive(int(pid_text)):
                    channel._delete(name, self._exchange.name, binding.routing_key, binding.pattern)
        except Exception:
            logger.debug("could not prune dead subscriber queues", exc_info=True)

    def _tick_s(self) -> float:
        return self._reorder_grace_s if self._gap_since_s is not None else self._poll_interval_s

    def _on_message(self, body: Any, message: Message) -> None:
        try:
            event = ProgressEvent.model_validate(body)
        except Exception:
            logger.warning("ignored a malformed progress event message")
            return
        self._offer(event)

    # -- ordering ------------------------------------------------------------------

    def _offer(self, event: ProgressEvent) -> None:
        with self._delivery_lock:
            expected = self._next_seq
            if expected is None:
                expected = self._next_seq = event.seq
            if event.seq < expected:
                return  # delivered already
            if event.seq > expected:
                self._early[event.seq] = event
                if self._gap_since_s is None:
                    self._gap_since_s = time.monotonic()
                return
            self._deliver(event)
            self._release_early()

    def _release_early(self) -> None:
        while self._early and self._next_seq in self._early:
            self._deliver(self._early.pop(self._next_seq))
        if not self._early:
            self._gap_since_s = None

    def _catch_up(self) -> None:
        """Deliver from the store's log whatever the broker has not (gaps, lost tails)."""
        with self._delivery_lock:
            if self._next_seq is None:
                return
            try:
                while True:
                    page = self._backfill(self._next_seq - 1)
                    if not page:
                        break
                    for event in page:
                        if event.seq >= self._next_seq:
                            self._early.pop(event.seq, None)
                            self._deliver(event)  # past what the log no longer has
                            self.backfilled += 1
            except Exception as exc:
                logger.warning("progress event log not readable for catching up: %s", exc)
                return
            for seq in [seq for seq in self._early if seq < self._next_seq]:
                del self._early[seq]
            if self._early:
                # Every event before one that arrived was committed before it
                # was sent, so what the log lacks below it is gone (purged).
                self._next_seq = min(self._early)
                self._release_early()
            self._gap_since_s = None if not self._early else self._gap_since_s

    def _deliver(self, event: ProgressEvent) -> None:
        self._next_seq = event.seq + 1
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                logger.exception("progress event subscriber failed")

    # -- closing -------------------------------------------------------------------

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (for up to ``timeout_s``), then stop both threads."""
        if self._closed:
            return
        self.wait_published(timeout_s)
        self._closed = True
        with self._outbox_ready:
            self._outbox_ready.notify_all()
        self._stop.set()
        for thread in (self._publisher, self._consumer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        self._drop_producer()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


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
