"""Session states: a discriminated union on ``status``, and the transition table.

Only the moves in :data:`SESSION_TRANSITIONS` are allowed. Terminal states
(completed, failed, cancelled) are final; a paused session goes back to work
only through ``resume_session``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import Field, TypeAdapter, model_validator

from ._base import FrozenModel
from .errors import InvalidProgress, InvalidTransition

__all__ = [
    "ACTIVE_STATUSES",
    "SESSION_TRANSITIONS",
    "TERMINAL_STATUSES",
    "Cancelled",
    "Completed",
    "Failed",
    "InProgress",
    "Initializing",
    "Paused",
    "ProgressState",
    "SessionStatus",
    "check_session_transition",
    "check_step_number",
    "percentage_of",
    "state_adapter",
]

# Numbers are strict (pydantic's strict mode, per field): the string "50" or
# True is not a percentage, and 3.0 is not a step number. An int is a float.
Percentage = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False, strict=True)]
NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]
NonNegativeSeconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)]


class SessionStatus(StrEnum):
    """The ``status`` discriminator of every state."""

    INITIALIZING = "initializing"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Initializing(FrozenModel):
    """Created (for Celery: dispatched), not started yet."""

    status: Literal[SessionStatus.INITIALIZING] = SessionStatus.INITIALIZING


class InProgress(FrozenModel):
    """Running. ``percentage`` may be left out when sub-operations carry the progress."""

    status: Literal[SessionStatus.IN_PROGRESS] = SessionStatus.IN_PROGRESS
    percentage: Percentage | None = None
    current_step: str | None = None
    total_steps: NonNegativeInt | None = None
    current_step_number: NonNegativeInt | None = None
    eta_seconds: NonNegativeSeconds | None = None

    @model_validator(mode="after")
    def _step_within_total(self) -> InProgress:
        check_step_number(self.current_step_number, self.total_steps)
        return self


class Paused(FrozenModel):
    status: Literal[SessionStatus.PAUSED] = SessionStatus.PAUSED
    reason: str = ""
    paused_at_percentage: Percentage = 0.0


class Completed(FrozenModel):
    status: Literal[SessionStatus.COMPLETED] = SessionStatus.COMPLETED
    completed_at: datetime
    result_summary: str | None = None
    duration_seconds: NonNegativeSeconds = 0.0


class Failed(FrozenModel):
    status: Literal[SessionStatus.FAILED] = SessionStatus.FAILED
    failed_at: datetime
    error_message: str
    error_code: str | None = None
    failed_at_percentage: Percentage = 0.0


class Cancelled(FrozenModel):
    status: Literal[SessionStatus.CANCELLED] = SessionStatus.CANCELLED
    cancelled_at: datetime
    reason: str = ""
    cancelled_at_percentage: Percentage = 0.0


ProgressState: TypeAlias = Annotated[
    Initializing | InProgress | Paused | Completed | Failed | Cancelled,
    Field(discriminator="status"),
]

#: Parses any state from a dict or JSON (``state_adapter.validate_json(...)``).
state_adapter: TypeAdapter[ProgressState] = TypeAdapter(ProgressState)

TERMINAL_STATUSES: frozenset[str] = frozenset(
    {SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED}
)
ACTIVE_STATUSES: frozenset[str] = frozenset(
    {SessionStatus.INITIALIZING, SessionStatus.IN_PROGRESS, SessionStatus.PAUSED}
)

_ENDINGS = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED})

#: Every allowed move; a status missing from a set is refused.
SESSION_TRANSITIONS: Mapping[str, frozenset[str]] = {
    SessionStatus.INITIALIZING: _ENDINGS | {SessionStatus.IN_PROGRESS, SessionStatus.PAUSED},
    SessionStatus.IN_PROGRESS: _ENDINGS | {SessionStatus.IN_PROGRESS, SessionStatus.PAUSED},
    SessionStatus.PAUSED: _ENDINGS | {SessionStatus.IN_PROGRESS},
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.FAILED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
}


def check_session_transition(session_id: str, current: str, target: str) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> target`` is allowed."""
    if target in SESSION_TRANSITIONS[current]:
        return
    if current in TERMINAL_STATUSES:
        reason = f"it is already {current} and terminal states are final"
    else:
        reason = "that move is not in the transition table"
    raise InvalidTransition(f"session {session_id!r} cannot go {current} -> {target}: {reason}")


def check_step_number(number: int | None, total: int | None) -> None:
    """Raise :class:`InvalidProgress` when step ``number`` is past ``total``."""
    if number is not None and total is not None and number > total:
        raise InvalidProgress(f"current_step_number {number} is past total_steps {total}")


def percentage_of(state: ProgressState) -> float | None:
    """The percentage a state itself carries.

    None for an in-progress state that gave none and for an initializing
    one: their session's percentage rolls up from its sub-operations (a
    group whose members finished before it was seen started is not at 0 %).
    """
    match state:
        case InProgress(percentage=value):
            return value
        case Paused(paused_at_percentage=value):
            return value
        case Failed(failed_at_percentage=value):
            return value
        case Cancelled(cancelled_at_percentage=value):
            return value
        case Completed():
            return 100.0
        case _:
            return None
