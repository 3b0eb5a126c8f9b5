"""LocalBus: synchronous fan-out to the callbacks of this process."""

from __future__ import annotations

import logging

import pytest

from celery_progress_mcp import ProgressEvent
from celery_progress_mcp.bus import LocalBus

from .events import progress_event as _event


def test_every_subscriber_gets_every_event_in_order_before_publish_returns() -> None:
    bus = LocalBus()
    first: list[int] = []
    second: list[int] = []
    bus.subscribe(lambda event: first.append(event.seq))
    bus.subscribe(lambda event: second.append(event.seq))
    bus.publish([_event(1), _event(2)])
    bus.publish([_event(3)])
    assert first == second == [1, 2, 3]


def test_an_unsubscribed_callback_gets_nothing_more() -> None:
    bus = LocalBus()
    got: list[int] = []
    unsubscribe = bus.subscribe(lambda event: got.append(event.seq))
    bus.publish([_event(1)])
    unsubscribe()
    unsubscribe()  # twice is harmless
    bus.publish([_event(2)])
    assert got == [1]


def test_a_failing_subscriber_is_logged_and_the_others_still_get_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = LocalBus()
    got: list[int] = []

    def broken(event: ProgressEvent) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(lambda event: got.append(event.seq))
    with caplog.at_level(logging.ERROR):
        bus.publish([_event(1), _event(2)])
    assert got == [1, 2]
    assert "progress event subscriber failed" in caplog.text


def test_the_hooks_of_the_port_cost_nothing() -> None:
    bus = LocalBus()
    got: list[int] = []
    bus.subscribe(lambda event: got.append(event.seq))
    bus.start_consuming()
    with bus.holding():
        bus.publish([_event(1)])  # delivered in the publisher's thread: nothing to hold
    bus.close()
    assert got == [1]
