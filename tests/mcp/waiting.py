"""``testing.eventually`` for async tests: it waits in a worker thread, not on the event loop.

A sync ``eventually`` on the event loop would stop the very tasks that make
the check come true (an SDK client's reader, its cancellation request), so
the waiting moves off the loop. A sync check runs in that thread; a
coroutine function is run on the loop, each time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread

from celery_progress_mcp.testing import DEFAULT_EVENTUALLY_TIMEOUT_S, eventually

__all__ = ["eventually_async"]

T = TypeVar("T")


async def eventually_async(
    check: Callable[[], T] | Callable[[], Coroutine[Any, Any, T]],
    *,
    timeout_s: float = DEFAULT_EVENTUALLY_TIMEOUT_S,
    what: str | None = None,
) -> T:
    """What ``eventually(check)`` returns, waited for without blocking the event loop."""
    if inspect.iscoroutinefunction(check):
        coroutine_function = check

        def blocking_check() -> T:
            value: T = anyio.from_thread.run(coroutine_function)
            return value

    else:
        blocking_check = check  # type: ignore[assignment]
    name = what or getattr(check, "__name__", None)
    waiting = functools.partial(eventually, blocking_check, timeout_s=timeout_s, what=name)
    return await anyio.to_thread.run_sync(waiting)
