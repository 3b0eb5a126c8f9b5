"""``Backoff``: the pauses of a thread that reconnects to a broker after an error."""

from __future__ import annotations

__all__ = ["FIRST_BACKOFF_S", "RECONNECT_MAX_S", "Backoff"]

#: Pause after the first error in a row.
FIRST_BACKOFF_S = 0.05
#: Longest pause between reconnection attempts.
RECONNECT_MAX_S = 5.0


class Backoff:
    """Pauses that double after each error in a row, from ``first_s`` up to ``max_s``."""

    def __init__(self, first_s: float = FIRST_BACKOFF_S, max_s: float = RECONNECT_MAX_S) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s

    def reset(self) -> None:
        """It worked: the next error pauses for ``first_s`` again."""
        self._next_s = self._first_s

    def next_s(self) -> float:
        """The pause after this error; the next one in a row is twice as long."""
        pause_s = self._next_s
        self._next_s = min(self._max_s, pause_s * 2)
        return pause_s
