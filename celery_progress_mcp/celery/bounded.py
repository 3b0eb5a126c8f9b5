"""Calls that may hang (a result backend, a store at shutdown) given a bounded wait.

The call runs on a daemon thread of its own; the caller waits at most
``timeout_s`` and then goes on without it. A call that overstays keeps
running in the background (nothing can stop a thread), and dies with the
process at the latest: it never holds up an exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["call_within"]

R = TypeVar("R")


class _Call(Generic[R]):
    def __init__(self, function: Callable[[], R]) -> None:
        self._function = function
        #: The result, once the function returned.
        self.result: list[R] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result.append(self._function())
        except BaseException as exc:  # handed to the caller, who decides
            self.error = exc


def call_within(function: Callable[[], R], timeout_s: float, what: str) -> R:
    """``function()``'s result if it returns within ``timeout_s``.

    Raises what ``function`` raised, or :class:`TimeoutError` naming ``what``
    when it is still running after ``timeout_s``.
    """
    call = _Call(function)
    thread = threading.Thread(target=call.run, name=f"celery-progress-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not answer within {timeout_s} s")
    if call.error is not None:
        raise call.error
    return call.result[0]
