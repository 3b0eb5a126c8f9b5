"""Dispatch: ``before_task_publish`` creates sessions, groups are sealed when sent.

A plain task's session is created as ``delay()`` publishes it: queued for
the tracker's writer (with a store that waits on I/O), so ``delay()`` never
waits on the database, and ``get_session`` in this process shows it at
once. A group's (or chord's) members are only noted as they are published
(:class:`Dispatches`), and the group's session gets them all at once when
its ``GroupResult`` is built, that is once the whole group is sent (see
:mod:`.canvas`). A member's own session is made when it starts. A chain's
session and its tasks' sessions are made from its first message, which
carries the rest of the chain; the next task's message, sent by the worker
that ran the previous one, is known as such without reading the store
(:attr:`.worker_runtime.Running.next_link`).

Every tracked task's message carries what its worker needs to make the
session itself, should the dispatcher's creation be late or lost: its
dispatch time (the header :data:`DISPATCHED_AT_HEADER`, ISO 8601 in UTC)
and its group, chord or chain session (:data:`PARENT_HEADER`, where it has
one not told by Celery's own ``group`` header). Protocol 2's custom headers
reach the worker as attributes of ``task.request``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .canvas import Member, chain_session_id, is_chain_session, seal_mutation
from .metadata_keys import (
    CALLBACK,
    KIND,
    KIND_CHAIN,
    KIND_CHORD,
    KIND_GROUP,
    MEMBERS,
    ROLE,
    ROLE_CALLBACK,
    SEALED,
)
from .safe_sessions import SafeSessions
from .task import TrackedTasks
from .worker_runtime import WorkerRuntime

if TYPE_CHECKING:
    from celery import Task

__all__ = [
    "DISPATCHED_AT_HEADER",
    "MAX_DISPATCHING_GROUPS",
    "PARENT_HEADER",
    "DispatchRecord",
    "Dispatcher",
    "Dispatches",
    "dispatched_at",
    "header_of",
    "next_link_of",
    "parent_creation",
    "parent_of",
]

#: Groups whose dispatch this process follows at once (older records are dropped).
MAX_DISPATCHING_GROUPS = 1000
#: A chord callback's position among its chord's members: after every header task.
CALLBACK_INDEX = 1 << 30
#: The message header that carries a tracked task's dispatch time (ISO 8601, UTC).
DISPATCHED_AT_HEADER = "progress_dispatched_at"
#: The message header that names the session a task is a member of (a chain's,
#: a chord's for its callback); a group's member has Celery's ``group`` header.
PARENT_HEADER = "progress_parent_id"


def header_of(request: object, name: str) -> Any:
    """A header of a task's message: from ``task.request`` in the pool process, or
    from the worker's request (``task_revoked``, in the worker's main process)."""
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "request_dict", None)
        if isinstance(headers, Mapping):
            value = headers.get(name)
    return value


def parent_of(request: object) -> str | None:
    """The group, chord or chain session a task's message says it is a member of."""
    parent = header_of(request, PARENT_HEADER)
    if isinstance(parent, str) and parent:
        return parent
    group_id = header_of(request, "group")
    if group_id and header_of(request, "group_index") is not None:
        return str(group_id)
    return None


def next_link_of(request: object, parent_id: str | None) -> str | None:
    """The id of the task after this one in its chain, if it runs as a chain's member."""
    if parent_id is None or not is_chain_session(parent_id):
        return None
    chain = header_of(request, "chain")
    if not isinstance(chain, list) or not chain or not isinstance(chain[-1], dict):
        return None
    task_id = (chain[-1].get("options") or {}).get("task_id")
    return task_id if isinstance(task_id, str) else None


def dispatched_at(request: object) -> datetime | None:
    """The dispatch time a task's message carries; None if absent or unreadable."""
    value = header_of(request, DISPATCHED_AT_HEADER)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parent_creation(tasks: TrackedTasks, chord: Any, parent_id: str) -> tuple[str, dict[str, Any]]:
    """The name and metadata a group, chord or chain session is created with
    (``chord``: the callback a chord's members carry, else None).

    The same from the dispatching process (as the first member is published)
    and from a worker (as a member starts): whichever comes first creates it,
    the other finds it there (``if_absent``). A worker may come first when the
    dispatcher's creation is still queued for its writer; a member's change
    then finds its parent instead of being refused. A chain's session is
    sealed by its dispatcher, which alone knows every task of it.
    """
    if is_chain_session(parent_id):
        return "celery.chain", {KIND: KIND_CHAIN, SEALED: False}
    callback = callback_of(tasks, chord)
    kind = KIND_CHORD if callback is not None else KIND_GROUP
    metadata: dict[str, Any] = {KIND: kind, SEALED: False}
    if callback is not None:
        metadata[CALLBACK] = callback.id
    return f"celery.{kind}", metadata


def callback_of(tasks: TrackedTasks, chord: Any) -> Member | None:
    """A chord's callback, from the ``chord`` its header's members carry."""
    if not isinstance(chord, dict):
        return None
    options = chord.get("options") or {}
    callback_id = options.get("task_id")
    name = chord.get("task")
    if not callback_id or not isinstance(name, str):
        return None
    return Member(callback_id, name, tasks.weight(tasks.named(name)), CALLBACK_INDEX)


@dataclass(slots=True)
class DispatchRecord:
    """A group being dispatched by this process: its members so far."""

    group_id: str
    kind: str
    members: list[Member] = field(default_factory=list)
    callback: Member | None = None


class Dispatches:
    """Groups this process is dispatching, until their ``GroupResult`` seals them."""

    def __init__(self, limit: int = MAX_DISPATCHING_GROUPS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._records: OrderedDict[str, DispatchRecord] = OrderedDict()

    def record(self, group_id: str, kind: str, member: Member, callback: Member | None) -> bool:
        """Note a published member; True for the first member of the group seen here."""
        with self._lock:
            record = self._records.get(group_id)
            first = record is None
            if record is None:
                record = self._records[group_id] = DispatchRecord(group_id, kind)
                while len(self._records) > self._limit:
                    self._records.popitem(last=False)
            record.members.append(member)
            if callback is not None:
                record.callback = callback
            return first

    def take(self, group_id: str) -> DispatchRecord | None:
        with self._lock:
            return self._records.pop(group_id, None)

    def __contains__(self, group_id: object) -> bool:
        return group_id in self._records

    def after_fork(self) -> None:
        """In a forked child: the parent's dispatches are the parent's to seal."""
        self._lock = threading.Lock()
        self._records = OrderedDict()


class Dispatcher:
    """``before_task_publish`` and the sealing of groups."""

    def __init__(self, tasks: TrackedTasks, sessions: SafeSessions, runtime: WorkerRuntime) -> None:
        self._tasks = tasks
        self._sessions = sessions
        self._runtime = runtime
        self.dispatches = Dispatches()

    def after_fork(self) -> None:
        """In a forked child: the parent's dispatches are the parent's to seal."""
        self.dispatches.after_fork()

    def on_publish(self, task: Task, headers: MutableMapping[str, Any], body: Any) -> None:
        task_id = headers.get("id")
        if not task_id or headers.get("retries"):
            return  # a retry's message: its session goes on
        now = self._sessions.tracker.clock.now()
        headers.setdefault(DISPATCHED_AT_HEADER, now.isoformat())
        previous = self._runtime.get(str(headers.get("parent_id") or ""))
        if previous is not None and previous.next_link == task_id:
            # A chain's next task, sent by the previous one as it ends here: its
            # session was made with the chain's.
            headers[PARENT_HEADER] = previous.parent_id
            return
        embed = body[2] if isinstance(body, tuple | list) and len(body) >= 3 else None
        embed = embed if isinstance(embed, dict) else {}
        group_id = headers.get("group")
        group_index = headers.get("group_index")
        if group_id and group_index is not None:
            self._member_published(task, task_id, group_id, group_index, embed.get("chord"))
            return
        sessions = self._sessions
        metadata = self._tasks.metadata(task, headers)
        parent_id = None
        if group_id:
            parent_id = group_id  # a chord's callback carries its header's group id
            metadata[ROLE] = ROLE_CALLBACK
        chain = embed.get("chain")
        rest = self._chain_members(chain) if chain and parent_id is None else None
        if rest is not None:
            parent_id = chain_session_id(task_id)
            first = Member(task_id, task.name, self._tasks.weight(task), 0)
            self._start_chain(parent_id, [first, *rest])
        if parent_id is not None:
            headers[PARENT_HEADER] = parent_id
        created = sessions.create(task_id, task.name, metadata, parent_id, now)
        if created and rest:
            for member in rest:
                member_task = self._tasks.named(member.name)
                meta = self._tasks.metadata(member_task, {}) if member_task else {}
                sessions.create(member.id, member.name, meta, parent_id, now)

    def _member_published(
        self, task: Task, task_id: str, group_id: str, index: Any, chord: Any
    ) -> None:
        member = Member(task_id, task.name, self._tasks.weight(task), int(index))
        callback = callback_of(self._tasks, chord)
        kind = KIND_CHORD if callback is not None else KIND_GROUP
        if self.dispatches.record(group_id, kind, member, callback):
            name, metadata = parent_creation(self._tasks, chord, group_id)
            # A worker running a member may have made it first.
            self._sessions.create(group_id, name, metadata, None, if_absent=True)

    def _chain_members(self, chain: Any) -> list[Member] | None:
        """The chain's remaining tasks in order, if all are tracked plain tasks."""
        if not isinstance(chain, list):
            return None
        members = []
        for position, signature in enumerate(reversed(chain), start=1):
            if not isinstance(signature, dict) or signature.get("subtask_type"):
                return None
            name = signature.get("task")
            task_id = (signature.get("options") or {}).get("task_id")
            task = self._tasks.tracked_named(name)
            if task is None or not task_id:
                return None
            members.append(Member(task_id, task.name, self._tasks.weight(task), position))
        return members

    def _start_chain(self, chain_id: str, members: list[Member]) -> None:
        metadata = {KIND: KIND_CHAIN, SEALED: False, MEMBERS: len(members)}
        # A worker running its first task may have made it first; the seal follows.
        if not self._sessions.create(chain_id, "celery.chain", metadata, None, if_absent=True):
            return
        self._seal(chain_id, members, None)

    def seal(self, group_id: str) -> None:
        """The group's dispatch finished (its ``GroupResult`` was built here)."""
        record = self.dispatches.take(group_id)
        if record is not None:
            self._seal(group_id, record.members, record.callback)

    def _seal(self, parent_id: str, members: list[Member], callback: Member | None) -> None:
        tracker = self._sessions.tracker
        mutation = seal_mutation(tracker.engine, members, callback, tracker.clock.now())
        self._sessions.defer(parent_id, mutation)
