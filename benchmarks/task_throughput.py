"""What tracking costs a task end to end, tracked against untracked, on a real worker; JSON.

    python benchmarks/task_throughput.py [--tasks N] [--stores sqlite,postgresql]
        [--redis-url URL] [--postgres-url URL]

One run, a prefork worker with two processes (``-c 2``), Redis as broker and
result backend. For each store (an SQLite file; a private PostgreSQL schema),
the same app is run tracked (``install(app)``, ``@progress_task``) and
untracked (a plain ``@app.task``), alternating, ``--repeats`` times:

* ``tasks_per_s``: ``--tasks`` trivial tasks, each calling
  ``self.progress.update()`` ten times (the untracked one loops as long
  without it), from the first ``delay()`` to the last result; medians;
* ``delay_ms``: each ``delay()`` call of those runs, p50 and p99;
* ``visible_ms``: from the start of ``delay()`` to the moment another process
  (a tracker of its own on the same store, polling ``get_session`` every
  millisecond) finds the new session: p50 and p99 of ``--visibility`` tasks
  sent one at a time to a queue nobody consumes.

Ratios are tracked over untracked; ``targets_met`` checks the issue's targets
(throughput at least 0.8x, ``delay()`` p50 at most 1.3x, visibility p99 at
most 50 ms). The worker runs this file as its app (``-A task_throughput:app``),
configured through ``CPM_TP_*`` environment variables.
"""

from __future__ import annotations

import argparse
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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from celery import Celery

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from bench_workers import child_env, percentile, start_worker, stop_worker  # noqa: E402
from store import private_database  # noqa: E402  (a sibling benchmark script)

#: ``self.progress.update()`` calls per task.
UPDATES_PER_TASK = 10
#: How long the visibility watcher waits for one session, in seconds.
VISIBILITY_TIMEOUT_S = 10.0
#: How often the watcher looks, in seconds.
POLL_INTERVAL_S = 0.001


# -- the app (built from the environment, in the worker and in this process) ------------


def build_app() -> Celery:
    redis_url = os.environ["CPM_TP_REDIS"]
    prefix = os.environ["CPM_TP_PREFIX"]
    app = Celery(prefix, broker=redis_url, backend=redis_url)
    app.conf.task_default_queue = prefix
    app.conf.worker_prefetch_multiplier = 4
    if os.environ.get("CPM_TP_TRACKED") == "1":
        from celery_progress_mcp import install, progress_task

        app.conf.progress_store_url = os.environ["CPM_TP_STORE"]
        install(app)

        @progress_task(app, name=f"{prefix}.tracked")
        def tracked(self: Any) -> int:
            for done in range(1, UPDATES_PER_TASK + 1):
                self.progress.update(current=done, total=UPDATES_PER_TASK)
            return UPDATES_PER_TASK

    else:

        @app.task(bind=True, name=f"{prefix}.untracked")
        def untracked(self: Any) -> int:
            done = 0
            while done < UPDATES_PER_TASK:
                done += 1
            return done

    return app


app = build_app() if os.environ.get("CPM_TP_PREFIX") else None


# -- one measured run -----------------------------------------------------------------------------


def task_of(client: Celery, prefix: str) -> Any:
    """The app's one task: ``<prefix>.tracked`` or ``<prefix>.untracked``."""
    mode = "tracked" if os.environ.get("CPM_TP_TRACKED") == "1" else "untracked"
    return client.tasks[f"{prefix}.{mode}"]


def run_tasks(client: Celery, prefix: str, tasks: int) -> tuple[float, list[float]]:
    """Dispatch ``tasks`` tasks, wait for every result: (tasks/s, delay() ms each)."""
    work = task_of(client, prefix)
    delays_ms = []
    results = []
    clock = time.perf_counter
    began = clock()
    for _ in range(tasks):
        start = clock()
        results.append(work.delay())
        delays_ms.append((clock() - start) * 1000.0)
    for result in results:
        result.get(timeout=600)
    return tasks / (clock() - began), delays_ms


def watcher(store_url: str) -> int:
    """Another process: for each ``<id> <sent epoch s>`` line, poll until the session
    exists and answer with the delay in ms (or -1 after the timeout)."""
    from celery_progress_mcp import ProgressConfig, ProgressTracker, SessionNotFound

    tracker = ProgressTracker(ProgressConfig(store_url=store_url))
    print("ready", flush=True)
    for line in sys.stdin:
        session_id, sent = line.split()
        deadline_s = time.monotonic() + VISIBILITY_TIMEOUT_S
        answer = -1.0
        while time.monotonic() < deadline_s:
            try:
                tracker.get_session(session_id)
            except SessionNotFound:
                time.sleep(POLL_INTERVAL_S)
                continue
            answer = (time.time() - float(sent)) * 1000.0
            break
        print(answer, flush=True)
    tracker.close()
    return 0


def visibility(client: Celery, prefix: str, env: dict[str, str], samples: int) -> list[float]:
    """Delays until another process sees a dispatched task's session, in ms."""
    watching = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--watch", env["CPM_TP_STORE"]],
        env=child_env(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watching.stdin is not None
    assert watching.stdout is not None
    if watching.stdout.readline().strip() != "ready":
        raise RuntimeError("the watcher did not start")
    nobody = f"{prefix}.nobody"
    work = task_of(client, prefix)
    delays_ms = []
    try:
        for _ in range(samples):
            task_id = str(uuid.uuid4())
            sent = time.time()
            work.apply_async(task_id=task_id, queue=nobody)
            watching.stdin.write(f"{task_id} {sent!r}\n")
            watching.stdin.flush()
            delays_ms.append(float(watching.stdout.readline()))
    finally:
        watching.stdin.close()
        watching.wait(30)
        with client.connection_for_write() as connection:
            connection.default_channel.queue_delete(nobody)
    return delays_ms


def measure_store(kind: str, store_url: str, options: argparse.Namespace) -> dict[str, Any]:
    work_dir = Path(tempfile.mkdtemp(prefix="cpm-throughput-"))
    prefix = f"cpmtp{secrets.token_hex(3)}"
    rates: dict[str, list[float]] = {"tracked": [], "untracked": []}
    delays: dict[str, list[float]] = {"tracked": [], "untracked": []}
    visible_ms: list[float] = []
    for repeat in range(options.repeats):
        for mode in ("untracked", "tracked") if repeat % 2 == 0 else ("tracked", "untracked"):
            env = {
                **os.environ,
                "CPM_TP_REDIS": options.redis_url,
                "CPM_TP_PREFIX": prefix,
                "CPM_TP_STORE": store_url,
                "CPM_TP_TRACKED": "1" if mode == "tracked" else "0",
            }
            os.environ.update(env)
            client = build_app()
            worker = start_worker(
                "task_throughput:app", env, prefix, work_dir / "worker.log", client
            )
            try:
                run_tasks(client, prefix, min(50, options.tasks))  # warm the pool and connections
                rate, delay_ms = run_tasks(client, prefix, options.tasks)
                if mode == "tracked" and repeat == 0:
                    visible_ms = visibility(client, prefix, env, options.visibility)
            finally:
                stop_worker(worker)
                if mode == "tracked":
                    from celery_progress_mcp.celery import uninstall

                    uninstall(client)
                client.close()
            rates[mode].append(rate)
            delays[mode].extend(delay_ms)
    tracked_rate = statistics.median(rates["tracked"])
    untracked_rate = statistics.median(rates["untracked"])
    p50 = {mode: percentile(delays[mode], 0.5) for mode in delays}
    p99 = {mode: percentile(delays[mode], 0.99) for mode in delays}
    missed = sum(1 for delay in visible_ms if delay < 0)
    seen = [delay for delay in visible_ms if delay >= 0] or [float("inf")]
    figures = {
        "tasks_per_s": {
            "tracked": tracked_rate,
            "untracked": untracked_rate,
            "ratio": tracked_rate / untracked_rate,
            "runs": rates,
        },
        "delay_ms": {
            "tracked_p50": p50["tracked"],
            "untracked_p50": p50["untracked"],
            "p50_ratio": p50["tracked"] / p50["untracked"],
            "tracked_p99": p99["tracked"],
            "untracked_p99": p99["untracked"],
            "p99_ratio": p99["tracked"] / p99["untracked"],
        },
        "visible_ms": {
            "p50": percentile(seen, 0.5),
            "p99": percentile(seen, 0.99),
            "samples": len(visible_ms),
            "never_seen": missed,
        },
    }
    figures["targets_met"] = {
        "throughput_at_least_0_8x": figures["tasks_per_s"]["ratio"] >= 0.8,
        "delay_p50_at_most_1_3x": figures["delay_ms"]["p50_ratio"] <= 1.3,
        "visible_p99_at_most_50_ms": figures["visible_ms"]["p99"] <= 50.0 and missed == 0,
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CELERY_PROGRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CELERY_PROGRESS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--visibility", type=int, default=200, help="sessions to time")
    parser.add_argument("--watch", metavar="STORE_URL", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.watch:
        return watcher(options.watch)
    figures: dict[str, Any] = {}
    for kind in options.stores.split(","):
        with ExitStack() as stack:
            base = options.postgres_url if kind == "postgresql" else None
            store_url = stack.enter_context(private_database(kind, base))
            figures[kind] = measure_store(kind, store_url, options)
    figures["setup"] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "broker_and_backend": "redis",
        "worker": "prefork, 2 processes",
        "tasks": options.tasks,
        "updates_per_task": UPDATES_PER_TASK,
        "repeats": options.repeats,
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
