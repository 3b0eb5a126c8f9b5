"""Celery's own ``task-progress`` event, so Flower shows the PROGRESS state.

Flower (and ``celery events``) turn an event named ``task-<name>`` into the
state ``<NAME>``; the fields ride along. Sent from the worker's ticker, at
most once per coalescing window per task, only where the worker sends task
events (``celery worker -E``, or ``app.conf.progress_task_events = True``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .runtime import Running

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["TASK_PROGRESS_EVENT", "send_task_progress"]

#: The event's type; Flower shows it as the state ``PROGRESS``.
TASK_PROGRESS_EVENT = "task-progress"


def send_task_progress(app: Celery, running: Running) -> None:
    """Send one ``task-progress`` event with the task's latest progress."""
    with app.events.default_dispatcher(hostname=running.hostname) as dispatcher:
        dispatcher.send(
            TASK_PROGRESS_EVENT,
            uuid=running.session_id,
            state="PROGRESS",
            percent=running.percentage,
            current=running.current,
            total=running.total,
            description=running.step,
        )
