"""``KombuConsumer``: a thread that receives a fanout exchange's events in sequence order.

The thread binds an exclusive, auto-deleted queue of its own to the
exchange and hands what arrives to a :class:`~.reorder.ReorderBuffer`,
which delivers every event of the store's log once, in order: an early
arrival waits up to ``reorder_grace_s`` for its predecessors, then the gap
is filled from the store's log; a lost tail is found there when the broker
has been quiet for ``poll_interval_s``. On a transport without fanout
(``sqla+``) the thread only polls the store's log, every ``poll_interval_s``.

Deliveries hold a lock (:meth:`KombuConsumer.holding`), so a reader can
register and read up from the store's log with none falling in between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection, Consumer, Exchange, Queue
from kombu.message import Message

from ..core.models import ProgressEvent
from .backoff import Backoff
from .reorder import Backfill, ReorderBuffer

__all__ = ["FILESYSTEM_POLL_S", "QUEUE_EXPIRES_S", "KombuConsumer", "LatestSeq"]

logger = logging.getLogger(__name__)

#: The highest sequence number in the store's log.
LatestSeq = Callable[[], int]

#: Subscriber queues of dead processes expire on RabbitMQ after this long unused.
QUEUE_EXPIRES_S = 60.0
#: The filesystem transport polls its folder; this is how often the consumer's does.
FILESYSTEM_POLL_S = 0.02


class KombuConsumer:
    """Delivers the events published to ``exchange`` to ``deliver``, in sequence order.

    ``connection`` is cloned for the thread. ``backfill`` and ``latest_seq``
    read the shared store's event log. ``fanout``: False makes the thread
    poll the log instead of consuming from the broker.
    """

    def __init__(
        self,
        connection: Connection,
        exchange: Exchange,
        *,
        deliver: Callable[[ProgressEvent], None],
        backfill: Backfill,
        latest_seq: LatestSeq,
        fanout: bool,
        poll_interval_s: float,
        reorder_grace_s: float,
    ) -> None:
        self._connection = connection
        self._exchange = exchange
        self._deliver = deliver
        self._backfill = backfill
        self._latest_seq = latest_seq
        self.fanout = fanout
        self._poll_interval_s = poll_interval_s
        self._reorder_grace_s = reorder_grace_s
        self._lock = threading.Lock()
        #: Held while events are handed over; see :meth:`holding`.
        self._delivery_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._buffer = ReorderBuffer(deliver, backfill)
        #: The thread's broker connection while it has one.
        self._connection_in_use: Connection | None = None
        #: Connections of a parent process, kept so that they are never closed here.
        self._abandoned: list[Connection] = []

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def backfilled(self) -> int:
        """Events delivered from the store's log rather than the broker."""
        return self._buffer.backfilled

    def start(self) -> bool:
        """Start the thread, from the event after the log's latest; True if this call did."""
        with self._lock:
            if self._thread is not None:
                return False
            try:
                self._buffer.start_at(self._latest_seq() + 1)
            except Exception as exc:  # the store is down: start from the first event seen
                logger.warning("progress event log not readable: %s", exc)
                self._buffer.start_at(None)
            self._thread = threading.Thread(
                target=self._run, name="celery-progress-consumer", daemon=True
            )
            self._thread.start()
            return True

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold deliveries while the block runs (to register a reader atomically)."""
        with self._delivery_lock:
            yield

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            if not self.fanout:
                self._catch_up()
                self._stop.wait(self._poll_interval_s)
                continue
            try:
                self._consume_broker()
                backoff.reset()
            except Exception as exc:
                if self._stop.is_set():
                    return
                logger.warning("progress event consumer lost the broker: %s", exc)
                self._catch_up()  # what the broker lost meanwhile, from the store
                self._stop.wait(backoff.next_s())

    def _consume_broker(self) -> None:
        options = dict(self._connection.transport_options or {})
        if self._connection.transport.driver_type == "filesystem":
            options["polling_interval"] = FILESYSTEM_POLL_S
        with self._connection.clone(transport_options=options) as connection:
            self._connection_in_use = connection
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
                    self._drain(connection)
            finally:
                # kombu's virtual transports do not delete an auto-delete queue
                # when its consumer goes: unbind it, or events pile up for it.
                with contextlib.suppress(Exception):
                    queue(connection.default_channel).delete()
                self._connection_in_use = None

    def _drain(self, connection: Connection) -> None:
        """Receive until stopped, filling gaps that outlive the grace and lost tails."""
        buffer = self._buffer
        quiet_since_s = time.monotonic()
        while not self._stop.is_set():
            try:
                connection.drain_events(timeout=self._tick_s())
                quiet_since_s = time.monotonic()
            except TimeoutError:  # socket.timeout is TimeoutError
                pass
            except ValueError as exc:
                # An unreadable message (the filesystem transport can hand over
                # a file before its writer filled it): it is lost to the broker,
                # not to the store.
                logger.debug("unreadable progress event message: %s", exc)
                buffer.lost_one(time.monotonic())
            now_s = time.monotonic()
            if buffer.gap_outlived(now_s, self._reorder_grace_s):
                self._catch_up()
            elif now_s - quiet_since_s >= self._poll_interval_s:
                self._catch_up()  # a lost tail: nothing came after it
                quiet_since_s = now_s

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
        return (
            self._reorder_grace_s if self._buffer.gap_since_s is not None else self._poll_interval_s
        )

    def _on_message(self, body: Any, message: Message) -> None:
        try:
            event = ProgressEvent.model_validate(body)
        except Exception:
            logger.warning("ignored a malformed progress event message")
            return
        with self._delivery_lock:
            self._buffer.offer(event, time.monotonic())

    def _catch_up(self) -> None:
        """Deliver from the store's log whatever the broker has not (gaps, lost tails)."""
        with self._delivery_lock:
            try:
                self._buffer.catch_up()
            except Exception as exc:
                logger.warning("progress event log not readable for catching up: %s", exc)

    def close(self) -> None:
        """Stop the thread (it unbinds its queue on the way out)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def after_fork(self) -> None:
        """In a forked child: no thread (the parent's did not come along), new locks,
        the parent's connection let go without closing it, and a new reorder buffer
        (the parent's position in the stream is not the child's). :meth:`start`
        starts the child's own thread."""
        if self._connection_in_use is not None:
            self._abandoned.append(self._connection_in_use)
            self._connection_in_use = None
        self._lock = threading.Lock()
        self._delivery_lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._buffer = ReorderBuffer(self._deliver, self._backfill)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
