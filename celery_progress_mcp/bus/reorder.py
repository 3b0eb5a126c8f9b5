"""``ReorderBuffer``: one stream of events put back in sequence order, with no gap.

The store numbers its events in commit order; a broker may hand them over
out of order (two processes commit seq 10 and 11 and publish in the other
order), lose some (a broker restart, a publisher that died between commit
and publish) or repeat them. The buffer delivers each event once, in
sequence order:

* an event ahead of the next one expected waits (``offer``), and the gap
  it opened is timed, so the caller can tell when it outlived its grace;
* ``catch_up`` fills gaps and lost tails from the store's log; what the log
  no longer has (purged) is skipped, since every event before one that
  arrived was committed before it.

Pure logic: no thread, no lock, no clock (times are passed in); the caller
serialises the calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core.models import ProgressEvent

__all__ = ["Backfill", "ReorderBuffer"]

#: Events of the store's log with ``seq`` greater than the argument, oldest first.
Backfill = Callable[[int], Sequence[ProgressEvent]]


class ReorderBuffer:
    """Hands each event to ``deliver`` once, in sequence order, filling gaps from ``backfill``."""

    def __init__(self, deliver: Callable[[ProgressEvent], None], backfill: Backfill) -> None:
        self._deliver_to = deliver
        self._backfill = backfill
        #: The seq delivered next; None until known (then the first event offered sets it).
        self.next_seq: int | None = None
        #: Events that arrived before the ones ahead of them, by seq.
        self._early: dict[int, ProgressEvent] = {}
        #: When the oldest open gap opened (monotonic seconds); None while there is none.
        self.gap_since_s: float | None = None
        #: Events delivered from the store's log rather than the broker.
        self.backfilled = 0

    def start_at(self, next_seq: int | None) -> None:
        """Deliver from ``next_seq`` on (None: from the first event offered)."""
        self.next_seq = next_seq

    def offer(self, event: ProgressEvent, now_s: float) -> None:
        """An event from the broker: delivered if it is the next, held if early, else dropped."""
        expected = self.next_seq
        if expected is None:
            expected = self.next_seq = event.seq
        if event.seq < expected:
            return  # delivered already
        if event.seq > expected:
            self._early[event.seq] = event
            if self.gap_since_s is None:
                self.gap_since_s = now_s
            return
        self._deliver(event)
        self._release_early()

    def lost_one(self, now_s: float) -> None:
        """A message could not be read: a gap, opened now unless one is open already."""
        self.gap_since_s = self.gap_since_s or now_s

    def gap_outlived(self, now_s: float, grace_s: float) -> bool:
        """Whether a gap has been open for ``grace_s`` or longer."""
        return self.gap_since_s is not None and now_s - self.gap_since_s >= grace_s

    def catch_up(self) -> None:
        """Deliver from the store's log whatever the broker has not (gaps, lost tails).

        Raises what ``backfill`` raises; what was delivered before stays delivered.
        """
        if self.next_seq is None:
            return
        while True:
            page = self._backfill(self.next_seq - 1)
            if not page:
                break
            for event in page:
                if event.seq >= self.next_seq:
                    self._early.pop(event.seq, None)
                    self._deliver(event)  # past what the log no longer has
                    self.backfilled += 1
        for seq in [seq for seq in self._early if seq < self.next_seq]:
            del self._early[seq]
        if self._early:
            # Every event before one that arrived was committed before it
            # was sent, so what the log lacks below it is gone (purged).
            self.next_seq = min(self._early)
            self._release_early()
        self.gap_since_s = None if not self._early else self.gap_since_s

    def _release_early(self) -> None:
        while self._early and self.next_seq in self._early:
            self._deliver(self._early.pop(self.next_seq))
        if not self._early:
            self.gap_since_s = None

    def _deliver(self, event: ProgressEvent) -> None:
        self.next_seq = event.seq + 1
        self._deliver_to(event)
