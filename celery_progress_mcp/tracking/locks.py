"""The tracker's locks and the order they are taken in (the one place this is written).

A :class:`~.tracker.ProgressTracker` and its collaborators share three locks,
made together by :class:`TrackerLocks` (and made anew in a forked child):

``commit`` (re-entrant)
    Orders every store write with the publication of its events, so
    subscribers in this process see events in sequence order; a subscription
    reads up from the log and joins under it, so no event is published in
    between. The outage buffer queues and replays under it, in order with
    the commits. It is held across store transactions.

``state`` (re-entrant)
    Guards what the tracker keeps in memory: every session's window (its
    coalesced update, its write-behind queue of updates, creations and
    transitions, what is in flight, its view), the estimate of active
    sessions, and the list of subscriptions. A call that only coalesces or
    queues (with a writer: a creation, and every write of a session this
    process knows) takes this lock alone, briefly, checking against the view
    under it. A write in the caller's thread (without a writer, or of a
    session not known here, or a flush) holds it across its transaction, so
    the view it checks against cannot change under it; the background
    writer does not, holding it only to take a batch and to note what was
    written, so callers go on queueing while the database works.

``room`` (a condition)
    Back-pressure: a caller finding the write-behind queue full waits on it;
    the writer notifies it each time it takes a batch.

The order, outermost first: ``EventBus.holding()`` (a subscription joining),
then ``commit``, then ``state``, then ``room``. A lock is never taken while
holding one that comes after it. Each subscription, the writer, the
flusher and the refusal listeners (:mod:`.refusals`) also have a lock of
their own: those are taken last, and nothing calls back into the tracker
while holding one. Refusal listeners are called holding none of these
locks (a refusal is noted under them and reported once they are released),
so a listener may call the tracker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["TrackerLocks"]


@dataclass(frozen=True, slots=True)
class TrackerLocks:
    """The three locks of one tracker; see the module's docstring for their order."""

    commit: threading.RLock = field(default_factory=threading.RLock)
    state: threading.RLock = field(default_factory=threading.RLock)
    room: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))
