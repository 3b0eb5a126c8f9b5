"""Writes whose commit may have happened: recognised when replayed, never applied twice.

When the connection dies after the commit was sent, the store raises
``CommitInDoubt`` and the tracker buffers the write to replay it. The store
remembers, per session, what it attempted and the ``revision`` token the
last of those writes put in the session row: a replay that finds the row
still holding that token knows the commit happened, and returns what it
did instead of applying it a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...core.models import ProgressEvent, ProgressSession
from ..base import Creation
from . import codec
from . import statements as q
from .change import Written
from .executor import Executor

__all__ = ["InDoubt", "confirm_creation", "latest_events"]


@dataclass(frozen=True, slots=True)
class InDoubt:
    """Writes whose commit may have happened: replayed, each is recognised by being
    one of ``calls`` (the same Mutation or Change objects) while the row still holds
    ``revision`` (the token the last of them wrote). A creation is recognised too
    when its session exists whatever its revision: it is never inserted twice."""

    calls: tuple[object, ...]
    revision: int
    session: ProgressSession
    snapshot_count: int
    #: Events the calls logged, all told.
    events: int

    def made(self, call: object) -> bool:
        call = _identity(call)
        return any(made is call for made in self.calls)

    def last(self, call: object) -> bool:
        """Whether ``call`` is the last of the calls: its replay reports their events."""
        return self.calls[-1] is _identity(call)

    @classmethod
    def of(cls, calls: Sequence[object], written: Sequence[Written]) -> InDoubt:
        last = written[-1].cached
        return cls(
            tuple(_identity(call) for call in calls),
            last.revision,
            last.session,
            last.snapshot_count,
            sum(w.events for w in written),
        )


def _identity(call: object) -> object:
    """What a replay is recognised by: a mutation itself, a creation by its change
    (which ``Store.create`` and a ``Creation`` of ``apply_many`` both carry)."""
    return call.change if isinstance(call, Creation) else call


def confirm_creation(ex: Executor, doubt: InDoubt) -> list[ProgressEvent] | None:
    """The events of a creation in doubt if it happened, else None."""
    head = ex.one(q.READ_SESSION, {"b_id": doubt.session.id})
    if head is None or int(head["revision"]) != doubt.revision:
        return None
    return latest_events(ex, doubt.session.id, doubt.events)


def latest_events(ex: Executor, session_id: str, count: int) -> list[ProgressEvent]:
    """The session's last ``count`` logged events, oldest first."""
    if not count:
        return []
    rows = ex.all(q.LATEST_SESSION_EVENTS, {"b_session_id": session_id, "b_limit": count})
    return [codec.decode_event(row) for row in reversed(rows)]
