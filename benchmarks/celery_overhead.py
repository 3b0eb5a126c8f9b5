"""What progress tracking costs a Celery task, measured on a real worker with Redis; JSON.

    python benchmarks/celery_overhead.py [--redis-url URL] [--store-url URL]

Needs the ``benchmark`` extra (celery-progress, redis) and a Redis server
(``--redis-url``, else ``CELERY_PROGRESS_TEST_REDIS_URL``, else
``redis://127.0.0.1:6379/0``). The store is an SQLite file in a temporary
directory unless ``--store-url`` names another. Figures, in one run:

* ``update_us``: one ``self.progress.update()`` inside a task running on a
  prefork worker, with the default 500 ms window (median of batches of 100
  calls, each batch timed inside the task);
* ``celery_progress_set_progress_us``: celery-progress's
  ``ProgressRecorder.set_progress`` in a plain task (a synchronous
  ``update_state`` to the Redis result backend), per call;
* ``update_state_us``: a bare ``self.update_state(state="PROGRESS", ...)``
  in a plain task, per call;
* ``our_progress_recorder_us``: this package's drop-in ``ProgressRecorder``
  in a tracked task (coalesced, backend written once per window);
* ``latency_ms``: from ``update()`` in the worker (window 0) to a
  subscriber in another process, over Redis: p50, p90, p99;
* ``group_dispatch_s``: ``group(...).apply_async()`` of 1,000 tasks,
  tracked vs untracked (medians of ``--repeats``), and the ratio.

The worker runs this file as its app module (``-A celery_overhead:app``),
configured through ``CPM_BENCH_*`` environment variables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery, group

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_workers import child_env, percentile, start_worker, stop_worker

#: Calls per timed batch of ``update()`` inside the task.
BATCH = 100


# -- the app (built from the environment, in the worker and in this process) ------------


def build_app() -> Celery:
    from celery_progress_mcp import install, progress_task
    from celery_progress_mcp.celery import ProgressRecorder

    redis_url = os.environ["CPM_BENCH_REDIS"]
    prefix = os.environ["CPM_BENCH_PREFIX"]
    app = Celery(prefix, broker=redis_url, backend=redis_url)
    app.conf.task_default_queue = prefix
    app.conf.worker_prefetch_multiplier = 1
    app.conf.progress_store_url = os.environ["CPM_BENCH_STORE"]
    app.conf.progress_update_interval_ms = int(os.environ["CPM_BENCH_WINDOW_MS"])
    install(app)

    @progress_task(app, name=f"{prefix}.tracked_updates")
    def tracked_updates(self: Any, n: int) -> list[float]:
        update = self.progress.update
        percentages = [100.0 * i / n for i in range(n)]
        samples = []
        clock = time.perf_counter_ns
        for start in range(0, n - BATCH + 1, BATCH):
            chunk = percentages[start : start + BATCH]
            began = clock()
            for percentage in chunk:
                update(percentage)
            samples.append((clock() - began) / BATCH / 1000.0)
        return samples

    @progress_task(app, name=f"{prefix}.tracked_recorder")
    def tracked_recorder(self: Any, n: int) -> list[float]:
        recorder = ProgressRecorder(self)
        samples = []
        clock = time.perf_counter_ns
        for start in range(0, n - BATCH + 1, BATCH):
            began = clock()
            for done in range(start, start + BATCH):
                recorder.set_progress(done, n, "working")
            samples.append((clock() - began) / BATCH / 1000.0)
        return samples

    @app.task(bind=True, name=f"{prefix}.celery_progress_recorder")
    def celery_progress_recorder(self: Any, n: int) -> list[float]:
        from celery_progress.backend import ProgressRecorder as TheirRecorder

        recorder = TheirRecorder(self)
        samples = []
        clock = time.perf_counter_ns
        for done in range(n):
            began = clock()
            recorder.set_progress(done, n, "working")
            samples.append((clock() - began) / 1000.0)
        return samples

    @app.task(bind=True, name=f"{prefix}.bare_update_state")
    def bare_update_state(self: Any, n: int) -> list[float]:
        samples = []
        clock = time.perf_counter_ns
        for done in range(n):
            began = clock()
            self.update_state(state="PROGRESS", meta={"current": done, "total": n})
            samples.append((clock() - began) / 1000.0)
        return samples

    @progress_task(app, name=f"{prefix}.stamp")
    def stamp(self: Any, n: int, interval_s: float) -> int:
        for done in range(1, n + 1):
            self.progress.update(current=done, total=n, step=repr(time.time()))
            time.sleep(interval_s)
        return n

    @progress_task(app, name=f"{prefix}.noop")
    def noop(self: Any) -> None:
        return None

    @app.task(name=f"{prefix}.noop_plain")
    def noop_plain() -> None:
        return None

    return app


app = build_app() if os.environ.get("CPM_BENCH_PREFIX") else None


# -- the subscriber (another process) ----------------------------------------------------------


def subscriber(session_id: str) -> int:
    """Print the latency of each of the session's progress events, then a JSON list."""
    client = app or build_app()
    from celery_progress_mcp.celery.integration import integration_of

    integration = integration_of(client)
    assert integration is not None
    subscription = integration.tracker.subscribe_to_events(session_id=session_id)
    print("ready", flush=True)
    latencies = []
    while True:
        event = subscription.get(timeout=60)
        received = time.time()
        if event is None:
            break
        step = event.data.get("current_step")
        if event.event_type == "ProgressUpdated" and step:
            with contextlib.suppress(ValueError):
                latencies.append((received - float(step)) * 1000.0)
        if event.event_type in ("SessionCompleted", "SessionFailed", "SessionCancelled"):
            break
    print(json.dumps(latencies), flush=True)
    integration.tracker.close()
    return 0


# -- the measurements ----------------------------------------------------------------------------


def measure(options: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="celery-overhead-"))
    prefix = f"cpmbench{secrets.token_hex(3)}"
    store = options.store_url or f"sqlite:///{work / 'progress.sqlite3'}"
    env = {
        **os.environ,
        "CPM_BENCH_REDIS": options.redis_url,
        "CPM_BENCH_PREFIX": prefix,
        "CPM_BENCH_STORE": store,
        "CPM_BENCH_WINDOW_MS": "500",
    }
    os.environ.update(env)
    client = build_app()
    log = work / "worker.log"

    def call(name: str, *args: Any) -> Any:
        return client.tasks[f"{prefix}.{name}"].apply_async(args).get(timeout=600)

    figures: dict[str, Any] = {}
    worker = start_worker("celery_overhead:app", env, prefix, log, client)
    try:
        updates = call("tracked_updates", options.updates)
        recorder = call("tracked_recorder", options.updates)
        theirs = call("celery_progress_recorder", options.writes)
        bare = call("bare_update_state", options.writes)
    finally:
        stop_worker(worker)
    figures["update_us"] = {
        "median": statistics.median(updates),
        "p90": percentile(updates, 0.9),
        "calls": len(updates) * BATCH,
    }
    figures["our_progress_recorder_us"] = {"median": statistics.median(recorder)}
    figures["celery_progress_set_progress_us"] = {"median": statistics.median(theirs)}
    figures["update_state_us"] = {"median": statistics.median(bare)}
    ours = figures["update_us"]["median"]
    figures["ratios"] = {
        "celery_progress_over_update": statistics.median(theirs) / ours,
        "update_state_over_update": statistics.median(bare) / ours,
        "celery_progress_over_our_recorder": statistics.median(theirs)
        / figures["our_progress_recorder_us"]["median"],
    }

    # Dispatching a group: tracked members and untracked ones, to a queue
    # nobody consumes (only the dispatch is timed), alternating.
    nobody = f"{prefix}.nobody"
    tracked_s, untracked_s = [], []
    for _ in range(options.repeats):
        for name, samples in (("noop_plain", untracked_s), ("noop", tracked_s)):
            signatures = [client.tasks[f"{prefix}.{name}"].s() for _ in range(options.group_size)]
            began = time.perf_counter()
            group(signatures).apply_async(queue=nobody)
            samples.append(time.perf_counter() - began)
    with client.connection_for_write() as connection:
        connection.default_channel.queue_delete(nobody)
    figures["group_dispatch_s"] = {
        "members": options.group_size,
        "untracked_median": statistics.median(untracked_s),
        "tracked_median": statistics.median(tracked_s),
        "ratio": statistics.median(tracked_s) / statistics.median(untracked_s),
    }

    # Latency with the window at 0: every update is written and published.
    env["CPM_BENCH_WINDOW_MS"] = "0"
    os.environ["CPM_BENCH_WINDOW_MS"] = "0"
    worker = start_worker("celery_overhead:app", env, prefix, log, client)
    try:
        session_id = str(uuid.uuid4())
        watcher = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--subscriber", session_id],
            env=child_env(env),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watcher.stdout is not None
        if watcher.stdout.readline().strip() != "ready":
            raise RuntimeError("the subscriber did not start")
        client.tasks[f"{prefix}.stamp"].apply_async(
            (options.latency_updates, 0.004), task_id=session_id
        ).get(timeout=600)
        output, _ = watcher.communicate(timeout=120)
        latencies = json.loads(output.strip().splitlines()[-1])
    finally:
        stop_worker(worker)
    figures["latency_ms"] = {
        "p50": percentile(latencies, 0.5),
        "p90": percentile(latencies, 0.9),
        "p99": percentile(latencies, 0.99),
        "events": len(latencies),
    }
    figures["targets_met"] = {
        "update_at_most_10_us": ours <= 10.0,
        "at_least_50x_cheaper_than_celery_progress": figures["ratios"][
            "celery_progress_over_update"
        ]
        >= 50,
        "latency_p50_at_most_5_ms": figures["latency_ms"]["p50"] <= 5.0,
        "latency_p99_at_most_25_ms": figures["latency_ms"]["p99"] <= 25.0,
        "group_dispatch_at_most_1_5x": figures["group_dispatch_s"]["ratio"] <= 1.5,
    }
    figures["setup"] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "broker_and_backend": options.redis_url,
        "store": store.split(":", 1)[0],
        "worker": "prefork, 2 processes",
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CELERY_PROGRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--store-url", default=None)
    parser.add_argument("--updates", type=int, default=20_000, help="update() calls timed")
    parser.add_argument("--writes", type=int, default=300, help="backend writes timed")
    parser.add_argument("--latency-updates", type=int, default=500)
    parser.add_argument("--group-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subscriber", metavar="SESSION_ID", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.subscriber:
        return subscriber(options.subscriber)
    print(json.dumps(measure(options), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
