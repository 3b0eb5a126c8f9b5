"""Subscriptions: bounded, non-blocking fan-out of events to readers.

A producer never waits for a reader: each subscription holds at most
``buffer_size`` events, and when a slow reader lets it fill up the oldest
are dropped and counted in ``missed``; the reader can fill the gap from the
store's event log (``subscribe_to_events(since=...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Self

from ..core.errors import InvalidProgress
from ..core.models import ProgressEvent, ProgressEventType

__all__ = ["AsyncSubscription", "Subscription"]


class Subscription:
    """Iterable over events; ``get(timeout)`` returns the next one or None."""

    def __init__(
        self,
        *,
        buffer_size: int,
        session_id: str | None = None,
        event_types: Collection[ProgressEventType | str] | None = None,
        last_seq: int = 0,
        on_close: Callable[[Subscription], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.event_types = _parse_event_types(event_types) if event_types else None
        #: Events dropped because this subscription's buffer was full.
        self.missed = 0
        #: Sequence number of the newest event accepted; older ones are duplicates.
        self.last_seq = last_seq
        self.closed = False
        self._buffer: deque[ProgressEvent] = deque()
        self._buffer_size = buffer_size
        self._ready = threading.Condition(threading.Lock())
        #: Called after each push, outside the lock (an immutable tuple, so
        #: it is read without copying).
        self._wakers: tuple[Callable[[], None], ...] = ()
        self._waiting = 0
        self._on_close = on_close

    def matches(self, event: ProgressEvent) -> bool:
        return (self.session_id is None or event.session_id == self.session_id) and (
            self.event_types is None or event.event_type in self.event_types
        )

    def push(self, event: ProgressEvent) -> None:
        """Offer an event (called by producers; never blocks for long)."""
        if not self.matches(event):
            return
        with self._ready:
            if self.closed or event.seq <= self.last_seq:
                return
            self.last_seq = event.seq
            if len(self._buffer) >= self._buffer_size:
                self._buffer.popleft()
                self.missed += 1
            self._buffer.append(event)
            if self._waiting:  # Condition.notify costs microseconds even with no waiter
                self._ready.notify()
            wakers = self._wakers
        for wake in wakers:
            wake()

    def get(self, timeout: float | None = None) -> ProgressEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None: for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._buffer:
                if self.closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._waiting += 1
                try:
                    self._ready.wait(remaining)
                finally:
                    self._waiting -= 1
            return self._buffer.popleft()

    def get_nowait(self) -> ProgressEvent | None:
        with self._ready:
            return self._buffer.popleft() if self._buffer else None

    def drain(self) -> list[ProgressEvent]:
        """Every event buffered now, without waiting."""
        with self._ready:
            events = list(self._buffer)
            self._buffer.clear()
            return events

    def add_waker(self, wake: Callable[[], None]) -> None:
        with self._ready:
            self._wakers = (*self._wakers, wake)

    def close(self) -> None:
        with self._ready:
            if self.closed:
                return
            self.closed = True
            self._ready.notify_all()
            wakers = self._wakers
        for wake in wakers:
            wake()
        if self._on_close is not None:
            self._on_close(self)

    def __iter__(self) -> Iterator[ProgressEvent]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncSubscription:
    """The same subscription as an async iterator, woken from any thread."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._loop = asyncio.get_running_loop()
        self._flag = asyncio.Event()
        subscription.add_waker(self._wake)

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(self._flag.set)

    @property
    def missed(self) -> int:
        return self.subscription.missed

    async def get(self, timeout: float | None = None) -> ProgressEvent | None:
        # wait_for with a timeout of 0 never runs the coroutine, so an event
        # already buffered is taken here first.
        event = self.subscription.get_nowait()
        if event is not None:
            return event
        try:
            return await asyncio.wait_for(self._next(), timeout)
        except (TimeoutError, StopAsyncIteration):
            return None

    async def _next(self) -> ProgressEvent:
        while True:
            event = self.subscription.get_nowait()
            if event is not None:
                return event
            if self.subscription.closed:
                raise StopAsyncIteration
            self._flag.clear()
            # Re-check after clearing so a push between the two is not lost.
            event = self.subscription.get_nowait()
            if event is not None:
                return event
            await self._flag.wait()

    def __aiter__(self) -> AsyncIterator[ProgressEvent]:
        return self

    async def __anext__(self) -> ProgressEvent:
        return await self._next()

    def close(self) -> None:
        self.subscription.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


def _parse_event_types(
    event_types: Collection[ProgressEventType | str],
) -> frozenset[ProgressEventType]:
    try:
        return frozenset(ProgressEventType(t) for t in event_types)
    except ValueError as exc:
        names = ", ".join(t.value for t in ProgressEventType)
        raise InvalidProgress(f"unknown event type in {event_types!r}; expected: {names}") from exc
