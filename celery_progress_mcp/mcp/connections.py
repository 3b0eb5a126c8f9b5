"""The client connection behind a request: who it is, what runs when it closes, sending to it.

Request ids are per connection, and subscriptions and cancellation reasons
are kept per connection, so both need a key for "the connection this
request came on" and a way to forget it when the client leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.connection import Connection
from mcp.server.session import ServerSession

__all__ = ["connection_key", "notify_quietly", "on_connection_close"]

logger = logging.getLogger(__name__)

#: Key in ``Connection.state`` of the cleanups registered on a connection.
_CLEANUP_STATE_KEY = "celery-progress-mcp/cleanups"


def _connection_of(session: ServerSession) -> Connection | None:
    """The client connection a request came on.

    The one private access in this package: mcp 2.3.0 gives a handler its
    ``Connection`` (public ``state`` and ``exit_stack``, meant for handlers)
    only through ``ServerSession._connection``; ``ServerRequestContext`` has
    no ``connection`` field, and the ``Context`` that has one is not what the
    SDK hands to handlers. A per-request ``ServerSession`` cannot stand in:
    the SDK builds a new one for every request.
    """
    connection = getattr(session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


def connection_key(session: ServerSession) -> int:
    """Identifies the client connection a request came on (request ids are per connection)."""
    return id(_connection_of(session) or session)


def on_connection_close(
    session: ServerSession, callback: Callable[..., Awaitable[None]], *args: Any
) -> None:
    """Run ``callback(*args)`` once when the connection closes (its ``exit_stack``)."""
    connection = _connection_of(session)
    if connection is None:
        return
    registered: set[int] = connection.state.setdefault(_CLEANUP_STATE_KEY, set())
    if id(callback) in registered:
        return
    connection.exit_stack.push_async_callback(callback, *args)
    registered.add(id(callback))


async def notify_quietly(sending: Awaitable[Any]) -> None:
    """Await a notification; a client gone away is not an error of ours."""
    try:
        await sending
    except Exception as exc:
        logger.debug("notification not delivered: %s", exc)
