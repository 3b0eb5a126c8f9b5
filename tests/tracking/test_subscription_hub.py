"""``SubscriptionHub`` alone: joining through the bus's hooks, replay, fan-out, forks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from celery_progress_mcp import ProgressEvent, ProgressEventType
from celery_progress_mcp.bus.local import LocalBus
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.tracking.locks import TrackerLocks
from celery_progress_mcp.tracking.subscription_hub import SubscriptionHub

from .parts import Parts

E = ProgressEventType


class HookedBus(LocalBus):
    """A local bus that records its hooks being used."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def start_consuming(self) -> None:
        self.calls.append("start_consuming")

    @contextmanager
    def holding(self) -> Iterator[None]:
        self.calls.append("hold")
        yield
        self.calls.append("release")


def hub_of(parts: Parts, *, enabled: bool = True) -> SubscriptionHub:
    hub = SubscriptionHub(parts.store, parts.bus, parts.locks, buffer_size=100, enabled=enabled)
    parts.bus.subscribe(hub.fan_out)
    return hub


class ReadStore(MemoryStore):
    """A memory store that notes its log being read in the bus's record."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def events_since(
        self, since: int, *, session_id: str | None = None, limit: int = 1000
    ) -> list[ProgressEvent]:
        self.calls.append("read")
        return super().events_since(since, session_id=session_id, limit=limit)


def test_joining_starts_the_bus_and_reads_up_from_the_log_while_it_holds() -> None:
    bus = HookedBus()
    parts = Parts(store=ReadStore(bus.calls), bus=bus)
    parts.running()
    subscription = hub_of(parts).subscribe(since=0)

    assert bus.calls[:3] == ["start_consuming", "hold", "read"]
    assert bus.calls[-1] == "release"
    assert subscription.drain() == parts.published


def test_events_from_the_bus_reach_matching_subscriptions_once() -> None:
    parts = Parts()
    hub = hub_of(parts)
    everything = hub.subscribe()
    updates = hub.subscribe(event_types=[E.PROGRESS_UPDATED], since=0)
    session_id = parts.running()

    assert everything.drain() == parts.published
    assert [(e.session_id, e.event_type) for e in updates.drain()] == [
        (session_id, E.PROGRESS_UPDATED)
    ]


def test_a_closed_subscription_leaves_the_hub() -> None:
    parts = Parts()
    hub = hub_of(parts)
    kept, closed = hub.subscribe(), hub.subscribe()
    closed.close()
    parts.running()
    assert kept.drain() == parts.published
    assert closed.drain() == []


def test_a_disabled_hub_hands_out_closed_subscriptions_and_never_starts_the_bus() -> None:
    bus = HookedBus()
    parts = Parts(bus=bus)
    subscription = hub_of(parts, enabled=False).subscribe()
    assert subscription.closed
    assert bus.calls == []


def test_after_a_fork_the_parents_subscriptions_are_left_behind() -> None:
    parts = Parts()
    hub = hub_of(parts)
    parents = hub.subscribe()
    hub.after_fork(TrackerLocks())
    childs = hub.subscribe()
    parts.running()
    assert parents.drain() == []
    assert childs.drain() == parts.published


def test_closing_the_hub_ends_every_subscription() -> None:
    parts = Parts()
    hub = hub_of(parts)
    first, second = hub.subscribe(), hub.subscribe()
    hub.close()
    assert first.closed
    assert second.closed
