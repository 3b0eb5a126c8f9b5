"""Telling clients a session resource changed, at most once per update window.

Two kinds of listener: 2025-era clients that sent ``resources/subscribe``
(answered by the server's middleware, since ``MCPServer`` serves only
2026-07-28's ``subscriptions/listen``) get
``notifications/resources/updated`` on their connection; 2026-07-28
listeners hear of it through the server's subscription bus. A
connection's subscriptions are forgotten when it closes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from ..core.states import TERMINAL_STATUSES
from ..tracking.aio import AsyncProgressTracker
from .connections import connection_key, notify_quietly, on_connection_close
from .runner import subscribe
from .session_tools import resource_not_found, session_id_of, session_uri

__all__ = ["ListenBus", "ResourceSubscriptions"]


class ListenBus(InMemorySubscriptionBus):
    """The SDK's in-process bus, counting its ``subscriptions/listen`` streams."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners = 0

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self.listeners += 1
        done = False

        def once() -> None:
            nonlocal done
            if not done:
                done = True
                self.listeners -= 1
                unsubscribe()

        return once


class ResourceSubscriptions:
    """Who listens to which session, and the watcher that tells them it changed."""

    def __init__(self, tracker: AsyncProgressTracker) -> None:
        self._tracker = tracker
        #: session id -> (connection key -> the SDK session to notify through)
        self._subscribers: dict[str, dict[int, ServerSession]] = {}
        #: The server's bus for 2026-07-28 ``subscriptions/listen`` streams.
        self.listen_bus = ListenBus()

    @property
    def subscribed_sessions(self) -> frozenset[str]:
        """The sessions some 2025-era connection is subscribed to."""
        return frozenset(self._subscribers)

    def subscribe(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
        """Answer ``resources/subscribe``."""
        session_id = _subscribed_session(ctx)
        connection = connection_key(ctx.session)
        self._subscribers.setdefault(session_id, {})[connection] = ctx.session
        on_connection_close(ctx.session, self._forget_connection, connection)
        return {}

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
        """Answer ``resources/unsubscribe``."""
        session_id = _subscribed_session(ctx)
        subscribers = self._subscribers.get(session_id, {})
        subscribers.pop(connection_key(ctx.session), None)
        if not subscribers:
            self._subscribers.pop(session_id, None)
        return {}

    async def _forget_connection(self, connection: int) -> None:
        for session_id in list(self._subscribers):
            subscribers = self._subscribers[session_id]
            subscribers.pop(connection, None)
            if not subscribers:
                del self._subscribers[session_id]

    async def watch(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Tell subscribers and listeners a session changed, at most once per window."""
        subscription = await subscribe(self._tracker)
        task_status.started()
        interval_s = self._tracker.config.update_interval_s
        dirty: set[str] = set()
        last_flush_s = float("-inf")
        try:
            while True:
                event = await subscription.get(interval_s if dirty else None)
                if event is not None and (
                    event.session_id in self._subscribers or self.listen_bus.listeners
                ):
                    dirty.add(event.session_id)
                    if event.data.get("status") in TERMINAL_STATUSES:
                        last_flush_s = float("-inf")  # an ending is never held back
                now_s = time.monotonic()
                if dirty and now_s - last_flush_s >= interval_s:
                    last_flush_s = now_s
                    pending, dirty = dirty, set()
                    for session_id in pending:
                        await self._tell_updated(session_id)
        finally:
            subscription.close()

    async def _tell_updated(self, session_id: str) -> None:
        uri = session_uri(session_id)
        for session in list(self._subscribers.get(session_id, {}).values()):
            await notify_quietly(session.send_resource_updated(uri))
        if self.listen_bus.listeners:
            await self.listen_bus.publish(ResourceUpdated(uri=uri))


def _subscribed_session(ctx: ServerRequestContext[Any, Any]) -> str:
    """The session a ``resources/(un)subscribe`` names, or the JSON-RPC error to answer."""
    try:
        params = types.SubscribeRequestParams.model_validate(ctx.params or {}, by_name=False)
    except ValidationError:
        raise MCPError(types.INVALID_PARAMS, "Invalid request parameters") from None
    uri = str(params.uri)
    session_id = session_id_of(uri)
    if session_id is None:
        raise resource_not_found(uri, f"unknown resource {uri!r}")
    return session_id
