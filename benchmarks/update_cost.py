"""What one ``update_progress`` call costs its caller on the SQL store, printed as JSON.

    python benchmarks/update_cost.py [--updates N] [--postgres-url URL]

One tracker, one session, ``--updates`` calls made as fast as the caller
can, each timed, with the window at 0 (every update written behind, many
per transaction) and at the default 500 ms. Percentiles in microseconds. The
window-0 maximum is back-pressure: a caller far faster than the database
waits, now and then, for the writer's next batch. SQLite in a temporary
file; PostgreSQL when ``--postgres-url`` or CELERY_PROGRESS_TEST_POSTGRES_URL
is set (a private schema, dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

# benchmarks/store.py: the script's own directory is on the path.
from store import private_database

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
from celery_progress_mcp.store.sql import SqlStore


def call_costs_us(url: str, window_ms: int, updates: int) -> dict[str, float]:
    store = SqlStore(url)
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=window_ms), store=store)
    session_id = tracker.create_session("bench")
    tracker.update_progress(session_id, InProgress(percentage=0.0))
    costs = []
    clock = time.perf_counter
    for i in range(updates):
        state = InProgress(percentage=(i % 1000) / 10.0, current_step="step")
        started = clock()
        tracker.update_progress(session_id, state)
        costs.append(clock() - started)
    tracker.close()
    store.close()
    costs.sort()

    def at(fraction: float) -> float:
        return round(costs[max(0, int(fraction * len(costs)) - 1)] * 1e6, 1)

    return {"p50": at(0.5), "p99": at(0.99), "p99_9": at(0.999), "max": at(1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("CELERY_PROGRESS_TEST_POSTGRES_URL")
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/progress.db"
        results["sqlite"] = {
            f"window_{ms}_ms": call_costs_us(url, ms, args.updates) for ms in (0, 500)
        }
    if args.postgres_url:
        results["postgresql"] = {}
        for ms in (0, 500):
            with private_database("postgresql", args.postgres_url) as url:
                results["postgresql"][f"window_{ms}_ms"] = call_costs_us(url, ms, args.updates)
    print(json.dumps({"update_progress_us": results, "updates": args.updates}, indent=2))


if __name__ == "__main__":
    main()
