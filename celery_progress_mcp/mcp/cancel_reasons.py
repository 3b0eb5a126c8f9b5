"""Why a request was cancelled: the reasons ``notifications/cancelled`` carries.

The SDK cancels a request's handler before it hands the notification on,
so the handler asks for its reason after it was cancelled: the reason is
kept here by (connection, request id) and waited for a moment when it has
not come yet. Reasons nobody asks for are dropped after a while.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import anyio
import mcp_types as types
from mcp.server import ServerRequestContext
from pydantic import ValidationError

from .connections import connection_key

__all__ = ["CLIENT_GONE_REASON", "REASON_KEEP_S", "REASON_WAIT_S", "CancelReasons"]

#: How long a cancelled handler waits for the ``notifications/cancelled``
#: that carries its reason (the SDK cancels the handler before handing the
#: notification on).
REASON_WAIT_S = 0.5
#: How long a cancellation's reason is kept for a handler that has not asked yet.
REASON_KEEP_S = 30.0
#: Reason recorded when a request ends without a ``notifications/cancelled``.
CLIENT_GONE_REASON = "the MCP client went away or gave up on the request"
#: The reason recorded when the client gives none.
_NO_REASON_GIVEN = "cancelled by the MCP client"
#: Stands for "any connection": on 2026-07-28 connections every message has
#: a connection object of its own, so the request id alone also carries the reason.
_ANY_CONNECTION = 0


class CancelReasons:
    """The reasons of cancelled requests, until their handlers ask for them."""

    def __init__(self) -> None:
        self._reasons: dict[tuple[int, str], str] = {}
        self._waiting: dict[str, list[anyio.Event]] = {}
        #: (when noted, request id, connection key), oldest first.
        self._noted: deque[tuple[float, str, int]] = deque()

    def note(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """Keep the reason of a ``notifications/cancelled``, waking its handler if it waits."""
        try:
            params = types.CancelledNotificationParams.model_validate(
                ctx.params or {}, by_name=False
            )
        except ValidationError:
            return
        if params.request_id is None:
            return
        request_id = str(params.request_id)
        reason = params.reason or _NO_REASON_GIVEN
        connection = connection_key(ctx.session)
        self._forget_old()
        self._reasons[(connection, request_id)] = reason
        self._reasons[(_ANY_CONNECTION, request_id)] = reason
        self._noted.append((time.monotonic(), request_id, connection))
        for event in self._waiting.pop(request_id, []):
            event.set()

    def _forget_old(self) -> None:
        """Reasons for requests that had ended already are never asked for: drop them."""
        horizon_s = time.monotonic() - REASON_KEEP_S
        while self._noted and self._noted[0][0] < horizon_s:
            _, request_id, connection = self._noted.popleft()
            self._reasons.pop((connection, request_id), None)
            self._reasons.pop((_ANY_CONNECTION, request_id), None)

    async def reason_for(self, ctx: ServerRequestContext[Any, Any]) -> str:
        """The reason the client gave for cancelling this request, if it gave one."""
        request_id = str(ctx.request_id)
        key = (connection_key(ctx.session), request_id)
        if key not in self._reasons and (_ANY_CONNECTION, request_id) not in self._reasons:
            event = anyio.Event()
            self._waiting.setdefault(request_id, []).append(event)
            with anyio.move_on_after(REASON_WAIT_S):
                await event.wait()
            waiting = self._waiting.get(request_id, [])
            if event in waiting:
                waiting.remove(event)
                if not waiting:
                    del self._waiting[request_id]
        loose = self._reasons.pop((_ANY_CONNECTION, request_id), CLIENT_GONE_REASON)
        return self._reasons.pop(key, loose)
