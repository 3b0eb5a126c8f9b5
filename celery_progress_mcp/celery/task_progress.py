"""``TaskProgress``: ``self.progress`` inside a tracked task.

The hot path is ``update()``: it checks its arguments, builds the
in-progress state without pydantic's validation (the values were just
checked), and hands it to the tracker, which coalesces it (no I/O within
the window). Nothing else happens per call: no store read, no lock of its
own. Tracking never fails the task: a store that is down or a session the
store refuses is logged, not raised. Two things are raised on purpose:

* :class:`InvalidProgress` for bad arguments (a percentage of 150, metadata
  that is not JSON), as everywhere in the package;
* :class:`TaskCancelled` once the session was cancelled from outside.

How a cancellation reaches the task without a read per update: the tracker
writes the coalesced update when the window ends; the store refuses it
(the session is terminal) and the tracker forgets its window, so the next
update goes to the store, is refused too, and the handle then looks the
session up once. The worker's heartbeats find it too, and
``cancelled``/``raise_if_cancelled()`` check the store at most once per
``CANCEL_CHECK_INTERVAL_S``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..core.errors import (
    InvalidProgress,
    InvalidTransition,
    ProgressError,
    SessionNotFound,
)
from ..core.models import SubOperation, SubOperationUpdate
from ..core.states import Cancelled, InProgress, Paused, SessionStatus
from ..tracking.tracker import ProgressTracker
from .errors import TaskCancelled
from .worker_runtime import Running, WorkerRuntime

__all__ = [
    "CANCEL_CHECK_INTERVAL_S",
    "ProgressHandles",
    "SubOperationProgress",
    "TaskProgress",
    "detached",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``cancelled`` reads the store at most this often.
CANCEL_CHECK_INTERVAL_S = 1.0
#: After the store refused an update (paused elsewhere, a store outage),
#: updates skip the tracker for this long before trying again.
REFUSAL_BACKOFF_S = 1.0
#: ``iter()`` reports at most this often (the tracker coalesces anyway).
ITER_REPORT_INTERVAL_S = 0.05

_IN_PROGRESS = SessionStatus.IN_PROGRESS
_new_state = InProgress.trusted


def _percentage(value: Any) -> float:
    try:
        percentage = float(value)
    except (TypeError, ValueError):
        raise InvalidProgress(f"percentage must be a number, got {value!r}") from None
    if not 0.0 <= percentage <= 100.0:  # also refuses NaN
        raise InvalidProgress(f"percentage must be within 0..100, got {value!r}")
    return percentage


def _given_percentage(
    percentage: float | None, current: float | None, total: float | None
) -> float | None:
    """The percentage given, or derived from ``current``/``total``; None if neither."""
    if percentage is not None:
        return _percentage(percentage)
    if current is not None and total is not None:
        return _from_counts(current, total)
    return None


def _from_counts(current: Any, total: Any) -> float | None:
    try:
        done, whole = float(current), float(total)
    except (TypeError, ValueError):
        raise InvalidProgress(
            f"current and total must be numbers, got {current!r} and {total!r}"
        ) from None
    if not (math.isfinite(done) and math.isfinite(whole)) or done < 0 or whole < 0:
        raise InvalidProgress(f"current and total must be finite and >= 0: {current!r}/{total!r}")
    if whole == 0:
        return None
    return min(100.0, 100.0 * done / whole)


def _ignore(*arguments: Any) -> None:
    return None


def _step_number(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _reporting(
    iterable: Iterable[T], total: int | None, report: Callable[[int, int | None], None]
) -> Iterator[T]:
    """Yield from ``iterable``, calling ``report(done, total)`` now and then and at the end.

    ``total`` defaults to ``len(iterable)`` where it has one.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    done = 0
    next_report_s = 0.0
    clock = time.monotonic
    for item in iterable:
        yield item
        done += 1
        now_s = clock()
        if now_s >= next_report_s:
            next_report_s = now_s + ITER_REPORT_INTERVAL_S
            report(done, total)
    report(done, total)


class TaskProgress:
    """The progress of the task running now (session id = task id)."""

    __slots__ = (
        "_backoff_until_s",
        "_cancel_checked_s",
        "_paused",
        "_running",
        "_tracker",
        "_update",
        "session_id",
    )

    def __init__(
        self, tracker: ProgressTracker | None, session_id: str, running: Running | None = None
    ) -> None:
        """``tracker`` None makes a detached handle (a task called directly): it reports nowhere."""
        self._tracker = tracker
        self._update = tracker.update_progress if tracker is not None else _ignore
        self.session_id = session_id
        self._running = running or Running(session_id=session_id, task_name="")
        self._paused = False
        self._backoff_until_s = 0.0
        self._cancel_checked_s = float("-inf")

    # -- reporting -----------------------------------------------------------------

    def update(
        self,
        percentage: float | None = None,
        *,
        current: float | None = None,
        total: float | None = None,
        step: str | None = None,
        eta_seconds: float | None = None,
        **metadata: Any,
    ) -> None:
        """Report progress; ``percentage`` is derived from ``current``/``total`` when omitted.

        ``current`` and ``total``, when whole numbers, are also recorded as
        the step number and the number of steps. Extra keyword arguments
        are merged into the session's metadata. Coalesced: at most one write
        per ``update_interval_ms``, the latest always written.
        """
        running = self._running
        self._stop_if_cancelled()
        percentage = _given_percentage(percentage, current, total)
        if percentage is None and not running.from_sub_operations:
            percentage = running.percentage  # a step alone keeps the last percentage
        if step is not None and type(step) is not str:
            step = str(step)
        if eta_seconds is not None:
            eta_seconds = float(eta_seconds)
            if not (math.isfinite(eta_seconds) and eta_seconds >= 0):
                raise InvalidProgress(f"eta_seconds must be finite and >= 0, got {eta_seconds!r}")
        running.percentage = percentage
        running.dirty = True
        running.step = step
        running.current = current
        running.total = total
        if self._paused or time.monotonic() < self._backoff_until_s:
            return
        state = _new_state(
            status=_IN_PROGRESS,
            percentage=percentage,
            current_step=step,
            total_steps=_step_number(total),
            current_step_number=_step_number(current),
            eta_seconds=eta_seconds,
        )
        self._call(self._update, self.session_id, state, (), metadata or None)

    def iter(
        self, iterable: Iterable[T], total: int | None = None, *, step: str | None = None
    ) -> Iterator[T]:
        """Yield from ``iterable``, reporting ``current``/``total`` as it goes (like tqdm).

        ``total`` defaults to ``len(iterable)`` where it has one; without a
        total only the count is reported.
        """

        def count(done: int, total: int | None) -> None:
            if total:
                self.update(current=min(done, total), total=total, step=step)
            else:
                self.update(None, current=done, step=step)

        return _reporting(iterable, total, count)

    # -- sub-operations --------------------------------------------------------------

    def plan(
        self, stages: Iterable[SubOperation | tuple[str, str] | tuple[str, str, float]]
    ) -> None:
        """Declare the task's stages up front: ``(id, name)`` or ``(id, name, weight)``.

        Declared stages count in the percentage from the start (pending at
        0 %), so it never drops as later stages begin. Stages the session
        has already (a redelivered task) are left as they are.
        """
        tracker = self._tracker
        if tracker is None:
            return
        subs = [
            stage
            if isinstance(stage, SubOperation)
            else SubOperation(
                id=stage[0], name=stage[1], weight=stage[2] if len(stage) > 2 else 1.0
            )
            for stage in stages
        ]
        try:
            known = {sub.id for sub in tracker.get_session(self.session_id).sub_operations}
        except ProgressError:
            known = set()
        missing = [sub for sub in subs if sub.id not in known]
        if missing:
            self._call(tracker.add_sub_operations, self.session_id, missing)

    @contextmanager
    def sub_operation(
        self, sub_operation_id: str, name: str | None = None, *, weight: float = 1.0
    ) -> Iterator[SubOperationProgress]:
        """A stage of the task: started on entry, completed on a normal exit.

        An exception fails the sub-operation with the error recorded (and
        propagates). While sub-operations exist and the task gives no
        percentage of its own, the session's percentage is their weighted mean.
        """
        self._stop_if_cancelled()
        tracker = self._tracker
        if tracker is None:
            yield SubOperationProgress(self, sub_operation_id)
            return
        sub = SubOperation(id=sub_operation_id, name=name or sub_operation_id, weight=weight)
        handle = SubOperationProgress(self, sub_operation_id)
        known = self._known_sub(sub_operation_id)
        if known is None:
            self._call(tracker.add_sub_operations, self.session_id, [sub])
        if known is None or not known.state.is_terminal:
            self._call(tracker.start_sub_operation, self.session_id, sub_operation_id)
        try:
            yield handle
        except TaskCancelled:
            raise
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._call(tracker.fail_sub_operation, self.session_id, sub_operation_id, error)
            raise
        else:
            self._call(tracker.complete_sub_operation, self.session_id, sub_operation_id)

    def update_sub_operation(
        self,
        sub_operation_id: str,
        percentage: float | None = None,
        *,
        current: float | None = None,
        total: float | None = None,
        step: str | None = None,
        **metadata: Any,
    ) -> None:
        """A stage's percentage (from ``current``/``total`` when omitted); coalesced.

        ``step`` defaults to the stage's id. The session's own percentage
        becomes its stages' weighted mean.
        """
        running = self._running
        self._stop_if_cancelled()
        percentage = _given_percentage(percentage, current, total)
        if self._paused or time.monotonic() < self._backoff_until_s:
            return
        update = SubOperationUpdate(id=sub_operation_id, percentage=percentage, metadata=metadata)
        state = _new_state(
            status=_IN_PROGRESS,
            percentage=None,  # the session's percentage rolls up from its stages
            current_step=step if step is not None else sub_operation_id,
            total_steps=None,
            current_step_number=None,
            eta_seconds=None,
        )
        self._call(self._update, self.session_id, state, (update,), None)
        # The session's percentage is now its stages' mean: the worker's
        # ticker reads it once per window for the parent's rollup.
        running.from_sub_operations = True
        running.dirty = True

    def _known_sub(self, sub_operation_id: str) -> SubOperation | None:
        """The sub-operation if the session has it already (a redelivered task)."""
        if self._tracker is None:
            return None
        try:
            return self._tracker.get_session(self.session_id).sub_operation(sub_operation_id)
        except ProgressError:
            return None

    def _stop_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelled` if the session is known to be cancelled."""
        running = self._running
        if running.cancelled:
            raise TaskCancelled(self.session_id, running.cancel_reason)

    def _call(self, method: Any, *arguments: Any) -> None:
        """A write: bad input raises, refusals and failures never reach the task."""
        try:
            method(*arguments)
        except InvalidProgress:
            raise
        except ProgressError as exc:
            self._refused(exc)
        except Exception:
            logger.exception("progress call on %s failed", self.session_id)

    # -- pausing ---------------------------------------------------------------------

    def pause(self, reason: str = "") -> None:
        """Mark the session paused (updates are dropped until ``resume()``)."""
        if self._tracker is not None:
            self._call(self._tracker.pause_session, self.session_id, reason)
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        if self._tracker is not None:
            self._call(self._tracker.resume_session, self.session_id)

    # -- cancellation ------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Whether the session was cancelled from outside (the store is read once a second)."""
        running = self._running
        if running.cancelled:
            return True
        now_s = time.monotonic()
        if now_s - self._cancel_checked_s >= CANCEL_CHECK_INTERVAL_S:
            self._cancel_checked_s = now_s
            self._check_cancelled()
        return running.cancelled

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelled` if the session was cancelled from outside."""
        if self.cancelled:
            raise TaskCancelled(self.session_id, self._running.cancel_reason)

    def _check_cancelled(self) -> None:
        if self._tracker is None:
            return
        try:
            session = self._tracker.get_session(self.session_id)
        except ProgressError:
            return
        state = session.state
        if isinstance(state, Cancelled):
            self._running.cancelled = True
            self._running.cancel_reason = state.reason
        elif isinstance(state, Paused):
            self._backoff_until_s = time.monotonic() + REFUSAL_BACKOFF_S

    def _refused(self, exc: ProgressError) -> None:
        """The store refused a write: find out why, once."""
        if isinstance(exc, InvalidTransition | SessionNotFound):
            self._check_cancelled()
            if self._running.cancelled:
                raise TaskCancelled(self.session_id, self._running.cancel_reason) from None
        logger.debug("progress update of %s refused: %s", self.session_id, exc)
        self._backoff_until_s = time.monotonic() + REFUSAL_BACKOFF_S


class SubOperationProgress:
    """The handle yielded by ``sub_operation()``: progress within the stage."""

    __slots__ = ("_owner", "id")

    def __init__(self, owner: TaskProgress, sub_operation_id: str) -> None:
        self._owner = owner
        self.id = sub_operation_id

    def update(
        self,
        percentage: float | None = None,
        *,
        current: float | None = None,
        total: float | None = None,
        step: str | None = None,
        **metadata: Any,
    ) -> None:
        """The stage's percentage (from ``current``/``total`` when omitted); coalesced."""
        self._owner.update_sub_operation(
            self.id, percentage, current=current, total=total, step=step, **metadata
        )

    def iter(
        self, iterable: Iterable[T], total: int | None = None, *, step: str | None = None
    ) -> Iterator[T]:
        """``TaskProgress.iter`` for this stage (without a total nothing is reported)."""

        def count(done: int, total: int | None) -> None:
            if total:
                self.update(current=min(done, total), total=total, step=step)

        return _reporting(iterable, total, count)


def detached() -> TaskProgress:
    """A handle for a task called directly (no request id): it reports nowhere."""
    return TaskProgress(None, "detached")


class ProgressHandles:
    """``self.progress`` of the tasks running in this process: one handle per task run."""

    def __init__(self, tracker: ProgressTracker, runtime: WorkerRuntime) -> None:
        self._tracker = tracker
        self._runtime = runtime

    def of_task(self, task_name: str, task_id: str | None) -> TaskProgress:
        """The running task's handle (made on first use); detached without a task id."""
        if task_id is None:
            return detached()
        running = self._runtime.get(task_id)
        if running is None:
            running = Running(session_id=task_id, task_name=task_name)
        handle: TaskProgress | None = running.extra.get("handle")
        if handle is None:
            handle = running.extra["handle"] = TaskProgress(self._tracker, task_id, running)
        return handle

    def of_session(self, session_id: str) -> TaskProgress:
        """A handle on another task's session (``update_state(task_id=...)`` of another task)."""
        return TaskProgress(self._tracker, session_id)
