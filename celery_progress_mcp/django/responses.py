"""Replies of :mod:`..monitor` as Django responses: JSON, and live streams under WSGI or ASGI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from ..monitor.api import Reply, error_reply
from .runtime import runtime

__all__ = ["json_response", "replied", "stream_response"]

#: Sent with a live stream: never cached, never buffered by a proxy.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def json_response(reply: Reply) -> JsonResponse:
    return JsonResponse(reply.body, status=reply.status, headers=dict(reply.headers), safe=False)


async def replied(reply: Awaitable[Reply]) -> JsonResponse:
    """The reply, or the package's error as the API's JSON error (404, 400, 409, 503)."""
    try:
        return json_response(await reply)
    except Exception as exc:  # every error is answered; error_reply logs the unexpected ones
        return json_response(error_reply(exc))


async def stream_response(
    request: HttpRequest, opened: Awaitable[AsyncIterator[bytes] | Reply]
) -> HttpResponse | StreamingHttpResponse:
    """A stream ``opened`` on the live hub's loop, read the way the server serves; or
    the :class:`Reply` that says why there is none (the hub is full: 503).

    Under ASGI the response iterates asynchronously; under WSGI, where Django
    would first read an asynchronous iterator to its end, from the thread.
    """
    here = runtime()
    stream = await asyncio.wrap_future(here.on_loop(_awaited(opened)))
    if isinstance(stream, Reply):
        return json_response(stream)
    content = here.aframes(stream) if isinstance(request, ASGIRequest) else here.frames(stream)
    return StreamingHttpResponse(content, content_type="text/event-stream", headers=STREAM_HEADERS)


async def _awaited(opened: Awaitable[AsyncIterator[bytes] | Reply]) -> AsyncIterator[bytes] | Reply:
    return await opened
