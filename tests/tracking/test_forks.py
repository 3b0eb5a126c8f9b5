"""Fork safety: one hook renews every registered object in a forked child."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable

import pytest

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.tracking import forks

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(check: Callable[[], str]) -> str:
    """Run ``check`` in a forked child; what it returns (or raises) comes back."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        try:
            answer = check()
        except BaseException as exc:
            answer = f"raised {exc!r}"
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


class Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def after_fork(self) -> None:
        self.calls.append(self.name)


def test_registered_objects_are_renewed_in_the_child_in_registration_order() -> None:
    calls: list[str] = []
    first, second = Recorder("first", calls), Recorder("second", calls)
    forks.renew_after_fork(first)
    forks.renew_after_fork(second)
    forks.renew_after_fork(first)  # once is enough

    assert in_child(lambda: ",".join(calls)) == "first,second"
    assert calls == []  # the parent is left alone


def test_an_object_is_held_weakly() -> None:
    calls: list[str] = []
    forks.renew_after_fork(Recorder("gone", calls))
    gc.collect()
    assert in_child(lambda: ",".join(calls)) == ""


def test_a_failing_renewal_does_not_stop_the_others() -> None:
    calls: list[str] = []

    class Broken:
        def after_fork(self) -> None:
            raise RuntimeError("boom")

    broken, after = Broken(), Recorder("after", calls)
    forks.renew_after_fork(broken)
    forks.renew_after_fork(after)
    assert in_child(lambda: ",".join(calls)) == "after"


def test_a_tracker_is_usable_in_the_child_even_if_a_lock_was_held_at_the_fork() -> None:
    store = MemoryStore()
    with ProgressTracker(ProgressConfig(update_interval_ms=10_000), store=store) as tracker:
        session_id = tracker.create_session("op")
        tracker.update_progress(session_id, InProgress(percentage=1.0))
        tracker.update_progress(session_id, InProgress(percentage=2.0))  # pending

        def child() -> str:
            other = tracker.create_session("in the child")
            tracker.update_progress(other, InProgress(percentage=50.0))
            tracker.flush()
            # The parent's pending update stays the parent's.
            mine = tracker.get_session(session_id).percentage
            return f"{tracker.get_session(other).percentage} {mine}"

        held = threading.Event()
        release = threading.Event()

        def hold_the_locks() -> None:
            with tracker._shared.locks.commit, tracker._shared.locks.state:
                held.set()
                release.wait()

        holder = threading.Thread(target=hold_the_locks)
        holder.start()
        held.wait()
        try:
            answer = in_child(child)
        finally:
            release.set()
            holder.join()
        assert answer == "50.0 1.0"
        tracker.flush()
        assert tracker.get_session(session_id).percentage == 2.0
