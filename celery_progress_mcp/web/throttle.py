"""Failed logins, counted per client address: past the limit, a 429 until the window passes.

A wrong token in the login form, a wrong bearer token or wrong basic-auth
credentials each count as one failure for the address the request came
from (the TCP peer: behind a reverse proxy every client shares the proxy's
address, so the limit then applies to all of them together). While an
address is over the limit, every attempt from it is answered 429 with a
``Retry-After`` header before its credentials are even compared, so a
guess made then can neither succeed nor be told apart.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from ..core.errors import ConfigError

__all__ = [
    "DEFAULT_FAILED_LOGINS",
    "DEFAULT_FAILED_LOGIN_WINDOW_S",
    "LoginThrottle",
]

#: Failed logins an address may make per window before it is refused.
DEFAULT_FAILED_LOGINS = 5
#: The window failed logins are counted over, in seconds.
DEFAULT_FAILED_LOGIN_WINDOW_S = 60.0
#: Addresses remembered at most; the longest quiet is forgotten first (memory stays bounded).
MAX_TRACKED_ADDRESSES = 10_000


class LoginThrottle:
    """Failures per address in a sliding window; thread-safe, bounded in memory."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_FAILED_LOGINS,
        window_s: float = DEFAULT_FAILED_LOGIN_WINDOW_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or not window_s > 0:
            raise ConfigError(
                f"the failed-login limit and window must be positive, got {limit} and {window_s}"
            )
        self.limit = limit
        self.window_s = window_s
        self._monotonic = monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again, or None when it may now."""
        now = self._monotonic()
        with self._lock:
            failures = self._recent(address, now)
            if failures is None or len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, address: str) -> None:
        """Count one failed login from ``address``."""
        now = self._monotonic()
        with self._lock:
            failures = self._recent(address, now)
            if failures is None:
                failures = self._failures[address] = deque(maxlen=self.limit)
                while len(self._failures) > MAX_TRACKED_ADDRESSES:
                    self._failures.popitem(last=False)
            failures.append(now)
            self._failures.move_to_end(address)

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures
