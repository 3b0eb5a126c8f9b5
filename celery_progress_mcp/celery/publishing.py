"""Dispatch: ``before_task_publish`` creates sessions, groups are sealed when sent.

A plain task's session is created before ``delay()`` returns. A group's (or
chord's) members are only noted as they are published, and the group's
session gets them all at once when its ``GroupResult`` is built, that is
once the whole group is sent (see :mod:`.canvas`): dispatching a group of a
thousand costs two store writes, not a thousand. A member's own session is
made when it starts. A chain's session and its tasks' sessions are made
from its first message, which carries the rest of the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.errors import ProgressError
from . import keys
from .base import IntegrationBase
from .canvas import Member, seal_mutation
from .tracker import chain_session_id

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger(__name__)

__all__ = ["PublishingMixin"]


class PublishingMixin(IntegrationBase):
    """``before_task_publish`` and the sealing of groups."""

    def on_publish(self, task: Task, headers: Mapping[str, Any], body: Any) -> None:
        task_id = headers.get("id")
        if not task_id or headers.get("retries"):
            return  # a retry's message: its session goes on
        embed = body[2] if isinstance(body, tuple | list) and len(body) >= 3 else None
        embed = embed if isinstance(embed, dict) else {}
        group_id = headers.get("group")
        group_index = headers.get("group_index")
        if group_id and group_index is not None:
            self._member_published(task, task_id, group_id, group_index, embed.get("chord"))
            return
        metadata = self._task_metadata(task, headers)
        parent_id = None
        if group_id:
            parent_id = group_id  # a chord's callback carries its header's group id
            metadata[keys.ROLE] = keys.ROLE_CALLBACK
        chain = embed.get("chain")
        rest = self._chain_members(chain) if chain and parent_id is None else None
        if rest is not None and not self._exists(task_id):
            parent_id = chain_session_id(task_id)
            first = Member(task_id, task.name, self._weight(task), 0)
            self._start_chain(parent_id, [first, *rest])
        created = self._create(task_id, task.name, metadata, parent_id)
        if created and rest:
            for member in rest:
                member_task = self.app.tasks.get(member.name)
                meta = self._task_metadata(member_task, {}) if member_task else {}
                self._create(member.id, member.name, meta, parent_id)

    def _exists(self, session_id: str) -> bool:
        try:
            return self.tracker.store.get(session_id, with_history=False) is not None
        except ProgressError:
            return False

    def _member_published(
        self, task: Task, task_id: str, group_id: str, index: Any, chord: Any
    ) -> None:
        member = Member(task_id, task.name, self._weight(task), int(index))
        callback = self._callback_of(chord)
        kind = keys.KIND_CHORD if callback is not None else keys.KIND_GROUP
        if self.dispatches.record(group_id, kind, member, callback):
            metadata: dict[str, Any] = {keys.KIND: kind, keys.SEALED: False}
            if callback is not None:
                metadata[keys.CALLBACK] = callback.id
            self._create(group_id, f"celery.{kind}", metadata, None)

    def _callback_of(self, chord: Any) -> Member | None:
        if not isinstance(chord, dict):
            return None
        options = chord.get("options") or {}
        callback_id = options.get("task_id")
        name = chord.get("task")
        if not callback_id or not isinstance(name, str):
            return None
        task = self.app.tasks.get(name)
        weight = self._weight(task) if task is not None else self.settings.member_weight
        return Member(callback_id, name, weight, 1 << 30)

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
            task = self.tracked_name(name)
            if task is None or not task_id:
                return None
            members.append(Member(task_id, task.name, self._weight(task), position))
        return members

    def _start_chain(self, chain_id: str, members: list[Member]) -> None:
        metadata = {keys.KIND: keys.KIND_CHAIN, keys.SEALED: True, keys.MEMBERS: len(members)}
        if not self._create(chain_id, "celery.chain", metadata, None):
            return
        now = self.tracker.clock.now()
        self._mutate(chain_id, seal_mutation(self.tracker.engine, members, None, now))

    def seal(self, group_id: str) -> None:
        """The group's dispatch finished (its ``GroupResult`` was built here)."""
        record = self.dispatches.take(group_id)
        if record is None:
            return
        now = self.tracker.clock.now()
        mutation = seal_mutation(self.tracker.engine, record.members, record.callback, now)
        self._mutate(group_id, mutation)
