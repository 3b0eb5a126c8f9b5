"""Keys of the session metadata the Celery integration writes.

Flat keys with a ``celery_`` prefix: session metadata merges shallowly, so a
nested ``celery`` object would be replaced whole by each update.
"""

from __future__ import annotations

__all__ = [
    "ACKS_LATE",
    "ATTEMPT",
    "CALLBACK",
    "CUSTOM_STATE",
    "ENDED_FROM",
    "ETA",
    "EXPIRED",
    "GROUP_INDEX",
    "KIND",
    "KIND_CHAIN",
    "KIND_CHORD",
    "KIND_GROUP",
    "KIND_TASK",
    "MEMBERS",
    "PARENT_KINDS",
    "PID",
    "REDELIVERED",
    "RESULT",
    "RETRY_REASON",
    "REVOKED",
    "ROLE",
    "ROLE_CALLBACK",
    "SEALED",
    "TASK",
    "TERMINATED",
    "WORKER",
]

#: What the session stands for: one of the ``KIND_*`` values.
KIND = "celery_kind"
KIND_TASK = "task"
KIND_GROUP = "group"
KIND_CHORD = "chord"
KIND_CHAIN = "chain"
#: Sessions whose progress rolls up from members rather than from a worker.
PARENT_KINDS = frozenset({KIND_GROUP, KIND_CHORD, KIND_CHAIN})

#: The task's registered name.
TASK = "celery_task"
#: ``hostname`` of the worker running the task, and its pool process id.
WORKER = "celery_worker"
PID = "celery_pid"
#: 1 for the first run, 2 for the first retry, ...
ATTEMPT = "celery_attempt"
RETRY_REASON = "celery_retry_reason"
#: True for a run that a broker redelivered (acks_late) and that continued.
REDELIVERED = "celery_redelivered"
#: The task acknowledges late: the broker redelivers it if its worker dies.
ACKS_LATE = "celery_acks_late"
#: ISO time before which the task is not to run (``countdown``/``eta``).
ETA = "celery_eta"
#: The last custom state given to ``update_state`` and its meta.
CUSTOM_STATE = "celery_state"
#: A short repr of the task's return value.
RESULT = "celery_result"
#: Revocation details recorded by ``task_revoked``.
REVOKED = "celery_revoked"
TERMINATED = "celery_terminated"
EXPIRED = "celery_expired"
#: Where a session's end came from when not from its task: ``"result_backend"``.
ENDED_FROM = "celery_ended_from"
#: A member's position in its group.
GROUP_INDEX = "celery_group_index"
#: ``"callback"`` for a chord's body.
ROLE = "celery_role"
ROLE_CALLBACK = "callback"
#: Parents: every member is known (the group was fully dispatched).
SEALED = "celery_sealed"
#: Parents: how many members (and callback) they have.
MEMBERS = "celery_members"
#: Chords: the callback's task id.
CALLBACK = "celery_callback"
