"""Running one Celery task for an MCP request and following it to its end.

The session (id = task id) is subscribed to before the task is sent, so no
event is missed; its events drive progress notices and tell when the task
has ended. Because the bus may drop events, the store and the result
backend are also polled every ``poll_interval_s``; when the poll sees the
end first, the events the bus has not brought yet are read from the
store's event log, so no progress notice is lost. Failure is an answer,
never a hang: a failed task, a lost worker and a task that no worker picks
up within ``pickup_timeout_s`` all end in an :class:`Outcome` with an error.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..core.config import ProgressGranularity
from ..core.errors import ProgressError
from ..core.models import ProgressEvent
from ..core.states import Cancelled, Completed, Failed, SessionStatus
from ..tracking.aio import AsyncProgressTracker
from ..tracking.subscription import AsyncSubscription
from ..tracking.tracker import ProgressTracker
from .celery_calls import AsyncCelery, Canceller, revoke_and_cancel
from .progress_notices import TERMINAL_EVENTS, Pacer, ProgressMapper, ProgressNotice
from .toolspec import TaskTool

__all__ = [
    "DispatchFailed",
    "NoticeSink",
    "Outcome",
    "RunOptions",
    "TaskRunner",
    "as_async",
    "subscribe",
]

logger = logging.getLogger(__name__)

#: Receives each progress notice to send.
NoticeSink = Callable[[ProgressNotice], Awaitable[None]]

_READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


def as_async(tracker: ProgressTracker | AsyncProgressTracker) -> AsyncProgressTracker:
    """``tracker`` with awaitable methods (a sync one is wrapped)."""
    if isinstance(tracker, AsyncProgressTracker):
        return tracker
    return AsyncProgressTracker(tracker=tracker)


async def subscribe(
    tracker: AsyncProgressTracker, session_id: str | None = None
) -> AsyncSubscription:
    """A subscription to the tracker's events (of one session), made off the event loop.

    Subscribing reads where the store's event log ends: a query with the SQL store.
    """
    subscription = await tracker.run(tracker.sync.subscribe_to_events, session_id=session_id)
    return AsyncSubscription(subscription)


class DispatchFailed(ProgressError):
    """The task could not be sent (broker unreachable, serialization refused)."""


@dataclass(frozen=True)
class RunOptions:
    #: A task still not started after this long is revoked and the call fails.
    pickup_timeout_s: float = 60.0
    #: Period of the fallback look at the store and the result backend.
    poll_interval_s: float = 1.0
    #: How long to wait for the result backend once the session has completed.
    result_timeout_s: float = 30.0
    #: Cancellation terminates the worker's process running the task
    #: (SIGTERM) instead of the default cooperative cancel plus revoke.
    terminate_on_cancel: bool = False


@dataclass(frozen=True)
class Outcome:
    """How a task ended: ``status`` is completed, failed or cancelled."""

    status: str
    value: Any = None
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == SessionStatus.COMPLETED


class TaskRunner:
    """Sends tasks and follows their sessions for the MCP server."""

    def __init__(
        self,
        app: Any,
        tracker: ProgressTracker | AsyncProgressTracker,
        *,
        options: RunOptions | None = None,
        canceller: Canceller | None = None,
    ) -> None:
        self.app = app
        self.tracker = as_async(tracker)
        self.celery = AsyncCelery(app)
        self.options = options or RunOptions()
        self.canceller = canceller or revoke_and_cancel(app, self.tracker.sync)
        config = self.tracker.config
        self._with_sub_operations = config.granularity_level is ProgressGranularity.VERBOSE
        self._interval_s = config.update_interval_s

    # -- sending --------------------------------------------------------------

    async def subscribe(self, task_id: str) -> AsyncSubscription:
        return await subscribe(self.tracker, task_id)

    async def send(
        self, tool: TaskTool, args: list[Any], kwargs: dict[str, Any], task_id: str
    ) -> None:
        """Send the task; raises :class:`DispatchFailed` when the broker refuses it."""
        task = self.app.tasks[tool.task_name]
        try:
            await self.celery.run(task.apply_async, args=args, kwargs=kwargs, task_id=task_id)
        except Exception as exc:  # kombu and the transports raise many kinds
            raise DispatchFailed(f"could not send task {tool.task_name}: {exc}") from exc

    async def cancel(self, task_id: str, reason: str) -> None:
        terminate = self.options.terminate_on_cancel
        await self.celery.cancel(self.canceller, task_id, reason, terminate)

    # -- following --------------------------------------------------------------

    async def follow(
        self,
        task_id: str,
        subscription: AsyncSubscription,
        on_notice: NoticeSink | None,
        *,
        sent_at_s: float | None = None,
    ) -> Outcome:
        """Wait for the task to end; send progress notices on the way."""
        mapper = ProgressMapper(with_sub_operations=self._with_sub_operations)
        pacer = Pacer(self._interval_s)
        sent_at_s = time.monotonic() if sent_at_s is None else sent_at_s
        next_poll_s = time.monotonic() + self.options.poll_interval_s
        started = False
        #: Sequence number of the newest event of the session handled so far.
        handled_seq = 0

        async def handle(event: ProgressEvent, now_s: float) -> None:
            nonlocal handled_seq
            handled_seq = max(handled_seq, event.seq)
            notice = mapper.observe(event) if on_notice is not None else None
            if notice is not None:
                await _deliver(on_notice, pacer.offer(notice, now_s))

        while True:
            now_s = time.monotonic()
            waits = [next_poll_s - now_s]
            pace = pacer.wait_s(now_s)
            if pace is not None:
                waits.append(pace)
            event = await subscription.get(max(0.0, min(waits)))
            now_s = time.monotonic()
            if event is not None:
                started = started or _shows_start(event)
                await handle(event, now_s)
                if event.event_type in TERMINAL_EVENTS:
                    await _deliver(on_notice, pacer.drain())
                    return await self.outcome_of(task_id)
            due = pacer.due(now_s)
            if due is not None:
                await _deliver(on_notice, due)
            if now_s >= next_poll_s:
                next_poll_s = now_s + self.options.poll_interval_s
                outcome, seen_started = await self._poll(task_id)
                started = started or seen_started
                if outcome is not None:
                    if on_notice is not None:
                        # The store showed the end before the bus brought the
                        # last events (still on their way, or dropped): they
                        # come from the store's event log, so none is lost.
                        for late in await self._events_after(task_id, handled_seq):
                            await handle(late, time.monotonic())
                    await _deliver(on_notice, pacer.drain())
                    return outcome
                if not started and now_s - sent_at_s >= self.options.pickup_timeout_s:
                    return await self._not_picked_up(task_id)

    async def _events_after(self, task_id: str, since: int) -> list[ProgressEvent]:
        """The session's events after sequence number ``since``, from the store's log."""

        def read() -> list[ProgressEvent]:
            subscription = self.tracker.sync.subscribe_to_events(session_id=task_id, since=since)
            with subscription as replay:
                return replay.drain()

        try:
            return await self.tracker.run(read)
        except ProgressError as exc:
            logger.debug("events of %s after %d not read: %s", task_id, since, exc)
            return []

    async def outcome_of(self, task_id: str) -> Outcome:
        """The outcome of a task whose session has ended."""
        try:
            session = await self.tracker.get_session(task_id)
        except ProgressError:
            outcome, _ = await self._poll(task_id)
            return outcome or Outcome(SessionStatus.FAILED, error="the task's session vanished")
        return await self._from_state(task_id, session.state)

    async def _from_state(self, task_id: str, state: Any) -> Outcome:
        match state:
            case Completed(result_summary=summary):
                found, value = await self.celery.result(task_id, self.options.result_timeout_s)
                return Outcome(SessionStatus.COMPLETED, value=value if found else summary)
            case Failed(error_message=message, error_code=code):
                return Outcome(SessionStatus.FAILED, error=message, error_code=code)
            case Cancelled(reason=reason):
                return Outcome(
                    SessionStatus.CANCELLED, error=f"cancelled: {reason}" if reason else "cancelled"
                )
        raise AssertionError(f"not a final state: {state!r}")

    async def _poll(self, task_id: str) -> tuple[Outcome | None, bool]:
        """Look at the store and the result backend: ``(outcome if ended, started)``."""
        state = None
        with contextlib.suppress(ProgressError):
            state = (await self.tracker.get_session(task_id)).state
        celery_state = await self.celery.state(task_id)
        if state is not None and state.status in (
            SessionStatus.COMPLETED,
            SessionStatus.FAILED,
            SessionStatus.CANCELLED,
        ):
            return await self._from_state(task_id, state), True
        if celery_state in _READY_STATES and state is None:
            return await self._from_celery(task_id, celery_state), True
        started = (state is not None and state.status != SessionStatus.INITIALIZING) or (
            celery_state not in (None, "PENDING")
        )
        if state is None and celery_state == "PENDING" and not self.app.conf.task_track_started:
            started = True  # untracked and not tracked as started: no way to tell, so no timeout
        return None, started

    async def _from_celery(self, task_id: str, celery_state: str) -> Outcome:
        if celery_state == "SUCCESS":
            found, value = await self.celery.result(task_id, self.options.result_timeout_s)
            return Outcome(SessionStatus.COMPLETED, value=value if found else None)
        if celery_state == "REVOKED":
            return Outcome(SessionStatus.CANCELLED, error="the task was revoked")
        error = await self.celery.error(task_id)
        return Outcome(
            SessionStatus.FAILED,
            error=str(error) or type(error).__name__,
            error_code=type(error).__name__,
        )

    async def _not_picked_up(self, task_id: str) -> Outcome:
        seconds = self.options.pickup_timeout_s
        reason = f"no worker picked up the task within {seconds:g} s"
        await self.celery.cancel(self.canceller, task_id, reason, False)
        return Outcome(
            SessionStatus.FAILED,
            error=f"{reason}: is a worker running and consuming its queue?",
            error_code="NOT_PICKED_UP",
        )


def _shows_start(event: ProgressEvent) -> bool:
    return event.data.get("status") not in (None, SessionStatus.INITIALIZING)


async def _deliver(on_notice: NoticeSink | None, notice: ProgressNotice | None) -> None:
    if on_notice is not None and notice is not None:
        await on_notice(notice)
