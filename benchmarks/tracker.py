"""Tracker throughput and memory, printed as JSON.

    python benchmarks/tracker.py [--updates N] [--sessions N] [--repeats N]

Figures (medians over ``--repeats`` runs, in one process):

* ``coalesced_updates_per_s``: ``update_progress`` with the default 500 ms
  window, events on, one subscriber draining; each call builds its
  ``InProgress`` state, as task code does.
* ``unwindowed_updates_per_s``: the same with ``update_interval_ms=0``, so
  every update is validated, committed, recorded in history and published.
* ``bytes_per_live_session``: memory (tracemalloc) of N live in-progress
  sessions in the memory store and tracker, history excluded (it is bounded
  by ``max_history_snapshots``) and the store's event log (a ring bounded by
  ``max_logged_events``, whatever the number of sessions: its cost per event
  is given apart), divided by N.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import threading
import time
import tracemalloc
from typing import Any

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
from celery_progress_mcp.store.memory import MemoryStore


def _drain(subscription: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        subscription.get(timeout=0.05)
        subscription.drain()


def updates_per_s(
    update_interval_ms: int, updates: int, sessions: int, *, build_states: bool = True
) -> float:
    """Updates per second; ``build_states=False`` reuses prepared states, to
    show the tracker's own cost apart from pydantic's validation of each state."""
    config = ProgressConfig(update_interval_ms=update_interval_ms, max_history_snapshots=100)
    with ProgressTracker(config) as tracker:
        ids = [tracker.create_session("bench") for _ in range(sessions)]
        for session_id in ids:  # first write of each session: never coalesced
            tracker.update_progress(session_id, InProgress(percentage=0.0, current_step="start"))
        subscription = tracker.subscribe_to_events()
        stop = threading.Event()
        reader = threading.Thread(target=_drain, args=(subscription, stop), daemon=True)
        reader.start()
        update = tracker.update_progress
        count = len(ids)
        prepared = [InProgress(percentage=i / 10.0, current_step="step") for i in range(1000)]
        started = time.perf_counter()
        if build_states:
            for i in range(updates):
                update(
                    ids[i % count], InProgress(percentage=(i % 1000) / 10.0, current_step="step")
                )
        else:
            for i in range(updates):
                update(ids[i % count], prepared[i % 1000])
        elapsed = time.perf_counter() - started
        stop.set()
        reader.join()
        subscription.close()
    return updates / elapsed


def bytes_per_session(sessions: int) -> dict[str, int]:
    """Traced bytes per live session, less the (separately bounded) history."""
    config = ProgressConfig(max_concurrent_sessions=sessions + 1)
    store = MemoryStore()
    tracker = ProgressTracker(config, store=store, background=False)
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for i in range(sessions):
        session_id = tracker.create_session("bench-op", {"n": i})
        tracker.update_progress(session_id, InProgress(percentage=50.0, current_step="working"))
    gc.collect()
    with_history = tracemalloc.get_traced_memory()[0] - baseline
    # The benchmark looks inside the store on purpose: history and the event
    # log are bounded separately (max_history_snapshots, max_logged_events).
    for history in store._history.values():
        history.clear()
    gc.collect()
    without_history = tracemalloc.get_traced_memory()[0] - baseline
    logged_events = len(store._log)
    store._log.clear()
    gc.collect()
    state_only = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    tracker.close()
    return {
        "bytes_per_live_session": round(state_only / sessions),
        "bytes_per_logged_event": round((without_history - state_only) / max(1, logged_events)),
        "logged_events_held": logged_events,
        "bytes_per_live_session_with_history": round(with_history / sessions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    coalesced = [updates_per_s(500, args.updates, 100) for _ in range(args.repeats)]
    unwindowed = [updates_per_s(0, args.updates // 5, 100) for _ in range(args.repeats)]
    unwindowed_prepared = [
        updates_per_s(0, args.updates // 5, 100, build_states=False) for _ in range(args.repeats)
    ]
    memory = bytes_per_session(args.sessions)
    print(
        json.dumps(
            {
                "coalesced_updates_per_s": round(statistics.median(coalesced)),
                "unwindowed_updates_per_s": round(statistics.median(unwindowed)),
                "unwindowed_updates_per_s_prepared_states": round(
                    statistics.median(unwindowed_prepared)
                ),
                **memory,
                "sessions_measured": args.sessions,
                "targets": {
                    "coalesced_updates_per_s": 200_000,
                    "unwindowed_updates_per_s": 30_000,
                    "bytes_per_live_session": 2048,
                },
                "runs": {
                    "coalesced": [round(x) for x in coalesced],
                    "unwindowed": [round(x) for x in unwindowed],
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
