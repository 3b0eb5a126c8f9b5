"""celery-progress's answers, live: the polling endpoint's JSON as Server-Sent Events.

``/celery-progress/<task_id>/stream/`` (and ``g/<group_id>/stream/``) sends,
as ``progress`` frames, exactly what ``/celery-progress/<task_id>/`` would
answer at that moment (:class:`.CompatReader`), with one key more:
``sub_operations``, the session's sub-operations as ``{"id", "name",
"status", "percentage"}`` (a group's members are its session's), an empty
list for an id without a session. A browser handles each frame as a polled
answer (``celery_progress_mcp.js``).

The current answer is sent at once; a fresh one whenever the live hub
(:class:`.LiveHub`) shows the session changed, and every
:data:`STREAM_REREAD_S` anyway, since an untracked task (no session) changes
only in its result backend. An answer equal to the last one sent is not sent
again; a comment line keeps an idle stream open through proxies. The stream
ends after the answer that ends the task: ``complete`` true, except a retry
(``RETRY`` is complete in celery-progress's JSON, yet its client keeps
polling for the next attempt, and so does the stream).

A read that fails once the stream has started is sent as an ``error``
frame whose data is the JSON body the polling endpoint answers for that
failure (:func:`.compat_reply`, :func:`.error_reply`); then the stream
ends. Before it starts, a failure is answered as the polling endpoint
answers it: :func:`open_compat_stream` returns the reply (a result backend
that cannot be read, too many streams) or lets the package's error rise
(an unknown group: ``SessionNotFound``, a 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from ..core.errors import SessionNotFound
from .api import Reply, compat_reply, error_reply, too_many_streams_reply
from .compat import Answer
from .compat_reader import CompatReader
from .live import LiveHub, StreamFilter, sse_frame
from .tracker_access import TrackerAccess

__all__ = ["STREAM_REREAD_S", "answer_ends_stream", "open_compat_stream", "sub_operations_of"]

#: How often an open stream reads the answer even when the hub shows no change, in s.
STREAM_REREAD_S = 2.0
#: The comment line sent when nothing else was sent for the hub's heartbeat interval.
_HEARTBEAT = b": ping\n\n"

#: Reads the current answer as a reply: 200 with the answer, or the failure's body and status.
_Read = Callable[[], Awaitable[Reply]]


def answer_ends_stream(answer: Answer) -> bool:
    """Whether celery-progress's client stops after ``answer`` (a retry is followed on)."""
    return answer.get("complete") is True and answer.get("state") != "RETRY"


async def sub_operations_of(access: TrackerAccess, session_id: str) -> list[dict[str, Any]]:
    """The session's sub-operations as the stream sends them; none without a session."""
    try:
        session = await access.session(session_id)
    except SessionNotFound:
        return []
    return [
        {
            "id": sub.id,
            "name": sub.name,
            "status": sub.state.value,
            "percentage": round(sub.percentage, 2),
        }
        for sub in session.sub_operations
    ]


async def open_compat_stream(
    hub: LiveHub,
    access: TrackerAccess,
    reader: CompatReader,
    target_id: str,
    *,
    group: bool = False,
    reread_s: float = STREAM_REREAD_S,
) -> AsyncGenerator[bytes] | Reply:
    """The SSE frames for a task (or, with ``group``, a group) id, or why there are none.

    ``hub`` tells when the session of that id changes; ``reader`` gives the
    answers, ``access`` the sub-operations. ``target_id`` is already checked
    as the polling endpoint checks it (:func:`.checked_task_id`). A
    :class:`Reply` comes back when the stream cannot start: the hub serves
    its maximum of streams (503), or the first read found the result
    backend unreadable (503, the polling endpoint's body). The package's
    errors of the first read rise as they do there.
    """
    frames = await hub.open_stream(StreamFilter(frozenset({target_id})), since=None)
    if frames is None:
        return too_many_streams_reply(hub.max_streams)

    async def read() -> Reply:
        answer = reader.group(target_id) if group else reader.task(target_id)
        reply = await compat_reply(answer)
        if reply.status != 200:
            return reply
        body = {**reply.body, "sub_operations": await sub_operations_of(access, target_id)}
        return Reply(body)

    # The hub's hello: taken, so the hub stream has started and closing it detaches it.
    await anext(frames)
    try:
        first = await read()
    except BaseException:
        await _close(frames)
        raise
    if first.status != 200:
        await _close(frames)
        return first
    return _follow(first, frames, read, reread_s=reread_s, heartbeat_s=hub.heartbeat_s)


async def _follow(
    first: Reply,
    frames: AsyncIterator[bytes],
    read: _Read,
    *,
    reread_s: float,
    heartbeat_s: float,
) -> AsyncGenerator[bytes]:
    """The answers from ``first`` on, one more per change or re-read, until the task ends."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    watcher = loop.create_task(_watch(frames, changed))
    try:
        reply, last_data = first, ""
        last_sent_s = loop.time()
        while True:
            data = json.dumps(reply.body, separators=(",", ":"))
            if reply.status != 200:
                yield sse_frame(data, event="error")
                return
            if data != last_data:
                yield sse_frame(data, event="progress")
                last_data, last_sent_s = data, loop.time()
                if answer_ends_stream(reply.body):
                    return
            elif loop.time() - last_sent_s >= heartbeat_s:
                yield _HEARTBEAT
                last_sent_s = loop.time()
            with contextlib.suppress(TimeoutError):  # a re-read is due
                await asyncio.wait_for(changed.wait(), reread_s)
            changed.clear()  # before the read: a change during it is read next time
            try:
                reply = await read()
            except Exception as exc:  # told as the polling endpoint tells it, then the end
                reply = error_reply(exc)
    finally:
        # Not awaited: a cancelled response may not wait; the watcher closes the hub stream.
        watcher.cancel()


async def _watch(frames: AsyncIterator[bytes], changed: asyncio.Event) -> None:
    """Set ``changed`` whenever the hub sends news of the session (a ping is none)."""
    try:
        async for frame in frames:
            if not frame.startswith(b":"):
                changed.set()
    finally:
        await _close(frames)


async def _close(frames: AsyncIterator[bytes]) -> None:
    if isinstance(frames, AsyncGenerator):
        await frames.aclose()
