"""``KombuPublisher``: committed events sent to a fanout exchange by a thread of its own.

Publishing never blocks the caller on the broker: events are queued
(bounded; on overflow the oldest are dropped and counted, since the store
has them and subscribers repair gaps) and the thread sends them in order,
over a producer of the connection pool it is given (the Celery app's). The
thread starts on the first publish, so creating a publisher before a
``fork`` is safe, and :meth:`KombuPublisher.after_fork` lets a child start
its own.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kombu import Connection, Exchange

from ..core.models import ProgressEvent
from .backoff import Backoff

__all__ = ["PUBLISH_QUEUE_SIZE", "KombuPublisher"]

logger = logging.getLogger(__name__)

#: Events queued for the publisher thread before the oldest are dropped.
PUBLISH_QUEUE_SIZE = 10_000


class KombuPublisher:
    """Sends events to ``exchange`` in the order queued, from a thread started on first use.

    ``connection_pool``: returns a kombu connection pool from which the thread
    takes the connection it keeps; without one it keeps a clone of ``connection``.
    """

    def __init__(
        self,
        connection: Connection,
        exchange: Exchange,
        connection_pool: Callable[[], Any] | None = None,
    ) -> None:
        self._connection = connection
        self._exchange = exchange
        self._connection_pool = connection_pool
        #: The thread's connection, producer and open batch (None: none yet).
        self._publishing: tuple[Any, Any, Any] | None = None
        self._outbox: collections.deque[ProgressEvent] = collections.deque()
        self._outbox_ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._closed = False
        #: Events dropped from a full queue (subscribers refill them from the store).
        self.dropped = 0
        #: Connections of a parent process, kept so that they are never closed here.
        self._abandoned: list[Any] = []

    def publish(self, events: Sequence[ProgressEvent]) -> bool:
        """Queue ``events`` for the thread; True if this call started the thread."""
        started = False
        with self._outbox_ready:
            overflow = len(self._outbox) + len(events) - PUBLISH_QUEUE_SIZE
            for _ in range(max(0, overflow)):
                self._outbox.popleft()
                self.dropped += 1
            self._outbox.extend(events)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="celery-progress-publisher", daemon=True
                )
                self._thread.start()
                started = True
            self._outbox_ready.notify()
        return started

    def _run(self) -> None:
        backoff = Backoff()
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
                backoff.reset()
            except Exception as exc:
                logger.warning("progress events not sent to the broker: %s", exc)
                if self._closed:
                    return
                time.sleep(backoff.next_s())
            finally:
                with self._outbox_ready:
                    self._in_flight = 0
                    self._outbox_ready.notify_all()

    def _send(self, batch: Sequence[ProgressEvent]) -> None:
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
                    retry=False,  # the thread backs off and reconnects itself
                )
            if batching is not None:
                batching.flush()
        except Exception as exc:
            self._drop_producer(exc)
            raise

    def _producer(self) -> tuple[Any, Any]:
        """The thread's producer, and its open batch where kombu has one.

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
                if remaining_s <= 0 or self._thread is None:
                    return False
                self._outbox_ready.wait(remaining_s)
        return True

    def close(self) -> None:
        """Stop the thread once it has sent what it holds, and let its connection go."""
        with self._outbox_ready:
            self._closed = True
            self._outbox_ready.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._drop_producer()

    def after_fork(self) -> None:
        """In a forked child: no thread (the parent's did not come along), a new lock,
        and the parent's connection let go without closing or releasing it. What the
        parent had queued is the parent's to send: the child starts with an empty queue."""
        if self._publishing is not None:
            self._abandoned.append(self._publishing)
            self._publishing = None
        self._outbox = collections.deque()
        self._outbox_ready = threading.Condition(threading.Lock())
        self._thread = None
        self._in_flight = 0
