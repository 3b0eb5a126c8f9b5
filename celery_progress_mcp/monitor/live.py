"""Live updates over Server-Sent Events, coalesced on the server.

One hub per app holds one event source while any client listens: a
tracker subscription, or the store's event log where the bus cannot see
other processes (see :class:`LiveHub`).
Every ``interval_s`` it drains what arrived, merges it into at most one
update per session, serialises the frame once and hands it to every client:
1,000 sessions updating 10 times a second cost each browser one frame per
interval, not 10,000 messages a second. Nothing here waits on the producer:
draining is non-blocking, and a client that falls behind is told to resync
instead of being buffered without bound.

A frame's SSE ``id`` is the highest event sequence number it covers, so a
reconnecting browser sends it back as ``Last-Event-ID`` and the stream
replays the store's event log from there (``since``), coalesced the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..bus.local import LocalBus
from ..core.errors import InvalidProgress
from ..core.models import ProgressEvent, ProgressEventType
from ..store.memory import MemoryStore
from ..tracking.subscription import Subscription
from .tracker_access import TrackerAccess

__all__ = [
    "BusSource",
    "EventSource",
    "LiveHub",
    "LogSource",
    "StreamFilter",
    "merge_events",
    "sse_frame",
]

logger = logging.getLogger(__name__)

#: How often the hub sends a frame; each session appears at most once per frame.
DEFAULT_INTERVAL_S = 0.25
#: A comment line this often keeps proxies and browsers from closing an idle stream.
DEFAULT_HEARTBEAT_S = 15.0
#: Frames a client may have waiting; past this it is sent a resync instead.
MAX_QUEUED_FRAMES = 40
#: Events replayed from the log for a resuming client; past this, a resync.
MAX_REPLAY_EVENTS = 50_000
#: Events read from the log per store call while replaying.
REPLAY_PAGE_EVENTS = 1000
#: Events read from the log per tick at most (log source); the rest wait for the next.
MAX_LOG_EVENTS_PER_TICK = 20_000
#: Live streams (SSE clients) one app serves at once, unless ``create_app`` says otherwise.
DEFAULT_MAX_STREAMS = 100
#: Browser reconnection delay announced to EventSource (``retry:``), in ms.
RECONNECT_DELAY_MS = 2000

#: Event data a live update carries (metadata and sub-operation details stay in the API).
_CARRIED_KEYS = frozenset(
    {
        "status",
        "percentage",
        "current_step",
        "current_step_number",
        "total_steps",
        "eta_seconds",
        "error_message",
        "error_code",
        "reason",
        "result_summary",
        "duration_seconds",
        "parent_id",
    }
)
_E = ProgressEventType
_SUB_EVENTS = frozenset(
    {
        _E.SUB_OPERATION_ADDED,
        _E.SUB_OPERATION_STARTED,
        _E.SUB_OPERATION_UPDATED,
        _E.SUB_OPERATION_COMPLETED,
        _E.SUB_OPERATION_FAILED,
    }
)


def merge_events(events: Iterable[ProgressEvent]) -> dict[str, dict[str, Any]]:
    """At most one update per session: the latest values, and flags for what happened.

    Flags: ``created`` (the session is new), ``subs`` (its sub-operations
    changed), ``expired`` (cleanup removed it).
    """
    merged: dict[str, dict[str, Any]] = {}
    for event in events:
        update = merged.get(event.session_id)
        if update is None:
            update = merged[event.session_id] = {
                "id": event.session_id,
                "operation_id": event.operation_id,
            }
        for key, value in event.data.items():
            if key in _CARRIED_KEYS:
                update[key] = value
        kind = event.event_type
        if kind is _E.SESSION_CREATED:
            update["created"] = True
        elif kind in _SUB_EVENTS:
            update["subs"] = True
        elif kind is _E.SESSION_EXPIRED:
            update["expired"] = True
        update["event"] = kind.value
        update["seq"] = event.seq
        update["ts"] = event.timestamp.timestamp()
    return merged


def sse_frame(
    data: str, *, event: str, event_id: int | None = None, retry_ms: int | None = None
) -> bytes:
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append(f"data: {data}")  # JSON from json.dumps holds no newline
    return ("\n".join(lines) + "\n\n").encode()


def _progress_frame(seq: int, updates: Collection[dict[str, Any]]) -> bytes:
    data = json.dumps({"seq": seq, "updates": list(updates)}, separators=(",", ":"))
    return sse_frame(data, event="progress", event_id=seq)


def _resync_frame(seq: int) -> bytes:
    return sse_frame(json.dumps({"seq": seq}), event="resync", event_id=seq)


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which updates a client wants: all, or those of some sessions (plus new sessions)."""

    session_ids: frozenset[str] | None = None
    include_new: bool = False

    @property
    def everything(self) -> bool:
        return self.session_ids is None

    def select(self, merged: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        if self.session_ids is None:
            return list(merged.values())
        return [
            update
            for session_id, update in merged.items()
            if session_id in self.session_ids or (self.include_new and update.get("created"))
        ]


@dataclass(eq=False)
class _Client:
    filter: StreamFilter
    frames: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    #: Highest seq covered by what the client was sent or queued.
    seq: int = 0
    #: Set when the client fell behind; its queue was replaced by one resync.
    overflowed: bool = False

    def offer(self, frame: bytes, seq: int) -> None:
        if self.frames.qsize() >= MAX_QUEUED_FRAMES:
            while not self.frames.empty():
                self.frames.get_nowait()
            self.overflowed = True
            self.frames.put_nowait(_resync_frame(seq))
        else:
            self.frames.put_nowait(frame)
        self.seq = seq


class EventSource:
    """Where the hub takes events from, a batch per tick."""

    #: The log position the source starts after.
    start_seq: int = 0

    async def take(self) -> tuple[list[ProgressEvent], bool]:
        """Events since the last call, oldest first, and whether some were lost."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop receiving."""


class BusSource(EventSource):
    """A tracker subscription: events as the bus delivers them, drained without waiting."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self._missed = self._subscription.missed
        self.start_seq = self._subscription.last_seq

    async def take(self) -> tuple[list[ProgressEvent], bool]:
        events = self._subscription.drain()
        missed = self._subscription.missed
        lost, self._missed = missed > self._missed, missed
        return events, lost

    def close(self) -> None:
        self._subscription.close()


class LogSource(EventSource):
    """The store's event log, read after the last sequence number seen.

    For a dashboard in its own process whose bus does not cross processes:
    the workers' events reach it through the store it shares with them.
    """

    def __init__(self, access: TrackerAccess, start_seq: int) -> None:
        self._access = access
        self.start_seq = self._cursor = start_seq

    async def take(self) -> tuple[list[ProgressEvent], bool]:
        events: list[ProgressEvent] = []
        while len(events) < MAX_LOG_EVENTS_PER_TICK:
            page = await self._access.events(None, since=self._cursor, limit=REPLAY_PAGE_EVENTS)
            if not page:
                break
            events.extend(page)
            self._cursor = page[-1].seq
            if len(page) < REPLAY_PAGE_EVENTS:
                break
        return events, False


class LiveHub:
    """The one event source behind every SSE client of an app.

    ``source`` is ``"bus"`` (a tracker subscription), ``"log"`` (poll the
    store's event log) or ``"auto"``: the bus where it can see every
    process's events (it is not the in-process ``LocalBus``, or the store is
    in memory so no other process writes), the log otherwise.
    """

    def __init__(
        self,
        access: TrackerAccess,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        source: str = "auto",
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        if source not in ("auto", "bus", "log"):
            raise InvalidProgress(f"live source must be auto, bus or log, got {source!r}")
        if max_streams < 1:
            raise InvalidProgress(f"max_streams must be at least 1, got {max_streams}")
        #: Streams open at once at most; one more is answered 503.
        self.max_streams = max_streams
        self._access = access
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.source_kind = _choose_source(access, source)
        self._clients: set[_Client] = set()
        self._source: EventSource | None = None
        self._task: asyncio.Task[None] | None = None
        #: Highest seq handed to clients (or the log's end when the hub started).
        self.seq = 0
        #: Updates delivered to clients, lifetime (for the benchmark).
        self.updates_sent = 0

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def full(self) -> bool:
        """Whether ``max_streams`` streams are open (counted from their first step on)."""
        return len(self._clients) >= self.max_streams

    async def open_stream(
        self, stream_filter: StreamFilter, since: int | None
    ) -> AsyncIterator[bytes] | None:
        """A client's stream, already counted, or None when ``max_streams`` are open.

        Its first frame is taken here, so the check and the count happen with
        no await between them: a burst of requests cannot slip past the cap.
        """
        if self.full:
            return None
        stream = self.stream(stream_filter, since)
        first = await anext(stream)
        return _starting_with(first, stream)

    # -- clients -----------------------------------------------------------------

    async def stream(self, stream_filter: StreamFilter, since: int | None) -> AsyncGenerator[bytes]:
        """The byte stream of one SSE client, until it disconnects."""
        client = _Client(stream_filter)
        await self._attach(client)
        try:
            start = client.seq
            yield sse_frame(json.dumps({"seq": start}), event="hello", retry_ms=RECONNECT_DELAY_MS)
            if since is not None and since > start:
                # The client saw a later log than this one (e.g. a restarted memory store).
                yield _resync_frame(start)
            elif since is not None and since < start:
                async for frame in self._replay(stream_filter, since, start):
                    yield frame
            while True:
                try:
                    frame = await asyncio.wait_for(client.frames.get(), self.heartbeat_s)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                yield frame
        finally:
            self._detach(client)

    async def _replay(
        self, stream_filter: StreamFilter, since: int, until: int
    ) -> AsyncIterator[bytes]:
        """Frames for the logged events in ``(since, until]``, a page per frame.

        Where the log cannot give them all (trimmed, or too many), one
        resync frame tells the client to refetch instead.
        """
        ids = stream_filter.session_ids
        only = next(iter(ids)) if ids is not None and len(ids) == 1 else None
        cursor = since
        replayed = 0
        while cursor < until:
            page = await self._access.events(only, since=cursor, limit=REPLAY_PAGE_EVENTS)
            page = [event for event in page if event.seq <= until]
            if not page:
                return
            trimmed = only is None and cursor == since and page[0].seq > since + 1
            replayed += len(page)
            if trimmed or replayed > MAX_REPLAY_EVENTS:
                yield _resync_frame(until)
                return
            cursor = page[-1].seq
            updates = stream_filter.select(merge_events(page))
            if updates:
                yield _progress_frame(cursor, updates)

    async def _attach(self, client: _Client) -> None:
        # Counted before the first await: a stream asked for right after sees it (the cap).
        self._clients.add(client)
        if self._source is None:
            await self._start()
        client.seq = self.seq

    def _detach(self, client: _Client) -> None:
        self._clients.discard(client)
        if not self._clients:
            self._stop()

    # -- the hub -------------------------------------------------------------------

    async def _start(self) -> None:
        if self.source_kind == "bus":
            source: EventSource = BusSource(await self._access.subscribe())
        else:
            source = LogSource(self._access, await self._access.last_seq())
        if self._source is not None:  # another client started it meanwhile
            source.close()
            return
        self._source = source
        self.seq = max(self.seq, source.start_seq)
        self._task = asyncio.get_running_loop().create_task(self._run(source))

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._source is not None:
            self._source.close()
            self._source = None

    async def _run(self, source: EventSource) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # A fixed rate, not a fixed pause: a slow tick does not stretch the next.
            due = max(due + self.interval_s, loop.time())
            await asyncio.sleep(due - loop.time())
            try:
                events, lost = await source.take()
                self.dispatch(events, lost)
            except Exception:  # a failed read must not end every client's stream
                logger.exception("live dashboard update failed")

    def dispatch(self, events: list[ProgressEvent], lost: bool = False) -> None:
        """Send one coalesced frame of ``events`` to every client."""
        if not events:
            return
        seq = events[-1].seq
        self.seq = seq
        if lost:
            # The source dropped events: clients refetch instead of trusting the frame.
            frame = _resync_frame(seq)
            for client in self._clients:
                client.offer(frame, seq)
            return
        merged = merge_events(events)
        shared: bytes | None = None
        for client in self._clients:
            if client.filter.everything:
                if shared is None:
                    shared = _progress_frame(seq, merged.values())
                client.offer(shared, seq)
                self.updates_sent += len(merged)
                continue
            updates = client.filter.select(merged)
            if updates:
                client.offer(_progress_frame(seq, updates), seq)
                self.updates_sent += len(updates)

    def close(self) -> None:
        self._stop()
        self._clients.clear()


async def _starting_with(first: bytes, rest: AsyncGenerator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for frame in rest:
            yield frame
    finally:
        await rest.aclose()


def _choose_source(access: TrackerAccess, source: str) -> str:
    if source != "auto":
        return source
    if isinstance(access.store, MemoryStore) or not isinstance(access.bus, LocalBus):
        return "bus"
    return "log"
