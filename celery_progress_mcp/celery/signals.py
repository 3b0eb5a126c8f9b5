"""Celery's signals, connected to an app's :class:`~.integration.Integration`.

Where each one fires: ``before_task_publish`` in whatever process publishes
(a client, or a worker continuing a chain or starting a chord's callback);
``task_prerun``, ``task_success``, ``task_retry`` and (mostly)
``task_failure`` in the pool process that ran the task; ``task_revoked``
and a lost pool process's ``task_failure`` (``WorkerLostError``) in the
worker's main process. ``worker_process_shutdown`` (a pool process about to
exit, also one recycled by ``worker_max_tasks_per_child``) closes the
tracker, ``worker_shutdown`` (the worker stopping) flushes it, each within
:data:`~.integration.STOP_WAIT_S`. Every receiver returns at once for a task
that is not tracked, and never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import signals

from .integration import Integration

__all__ = ["connect", "disconnect"]

logger = logging.getLogger(__name__)

Receiver = Callable[..., None]


def _guarded(function: Receiver) -> Receiver:
    def receiver(*arguments: Any, **options: Any) -> None:
        try:
            function(*arguments, **options)
        except Exception:
            logger.exception("progress tracking failed in a signal handler (Celery goes on)")

    return receiver


def connect(integration: Integration) -> list[tuple[Any, Receiver]]:
    """Connect the receivers; returns them, for ``disconnect``."""
    tracked = integration.tasks.tracked
    dispatcher = integration.dispatcher
    lifecycle = integration.lifecycle

    def before_task_publish(
        sender: Any = None, headers: Any = None, body: Any = None, **_: Any
    ) -> None:
        task = integration.tasks.tracked_named(sender)
        if task is not None:
            dispatcher.on_publish(task, headers or {}, body)

    def task_prerun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        if task_id and tracked(sender):
            lifecycle.on_prerun(sender, task_id)

    def task_success(sender: Any = None, result: Any = None, **_: Any) -> None:
        if tracked(sender):
            lifecycle.on_success(sender, result)

    def task_failure(
        sender: Any = None, task_id: str | None = None, exception: Any = None, **_: Any
    ) -> None:
        if task_id and tracked(sender):
            lifecycle.on_failure(sender, task_id, exception)

    def task_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        if tracked(sender):
            lifecycle.on_retry(sender, request, reason)

    def task_revoked(
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        signum: Any = None,
        expired: bool = False,
        **_: Any,
    ) -> None:
        if tracked(sender):
            lifecycle.on_revoked(sender, request, terminated, signum, expired)

    def task_postrun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        if task_id and tracked(sender):
            lifecycle.on_postrun(task_id)

    def celeryd_after_setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
        if getattr(instance, "app", None) is integration.app:
            sends = bool(getattr(instance, "task_events", False))
            integration.task_events.worker_sends_task_events = sends

    def worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is integration.app:
            integration.liveness.start()

    def worker_shutdown(sender: Any = None, **_: Any) -> None:
        # Flushed, not closed: a worker embedded in a process that goes on
        # (tests, ``celery.contrib.testing``) leaves its tracker usable.
        integration.liveness.stop()
        integration.flush_within()

    def worker_process_shutdown(**_: Any) -> None:
        # A pool process exits with os._exit (no atexit): everything accepted
        # is written now, within a bounded wait (also when recycled by
        # worker_max_tasks_per_child).
        integration.close_within()

    connections: list[tuple[Any, Receiver]] = [
        (signals.before_task_publish, before_task_publish),
        (signals.task_prerun, task_prerun),
        (signals.task_success, task_success),
        (signals.task_failure, task_failure),
        (signals.task_retry, task_retry),
        (signals.task_revoked, task_revoked),
        (signals.task_postrun, task_postrun),
        (signals.celeryd_after_setup, celeryd_after_setup),
        (signals.worker_ready, worker_ready),
        (signals.worker_shutdown, worker_shutdown),
        (signals.worker_process_shutdown, worker_process_shutdown),
    ]
    guarded = [(signal, _guarded(receiver)) for signal, receiver in connections]
    for signal, receiver in guarded:
        signal.connect(receiver, weak=False)
    return guarded


def disconnect(connections: list[tuple[Any, Receiver]]) -> None:
    for signal, receiver in connections:
        signal.disconnect(receiver)
