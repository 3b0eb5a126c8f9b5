"""The SQL store's throughput and read latency, printed as JSON.

    python benchmarks/store.py [--updates N] [--repeats N] [--sessions N] [--reads N]
        [--postgres-url URL] [--mysql-url URL]

Server URLs default to CELERY_PROGRESS_TEST_POSTGRES_URL / _MYSQL_URL; a
server without a URL is left out. Each server run works in a private schema
(PostgreSQL) or database (MariaDB), dropped afterwards; SQLite in a
temporary file.

Figures (medians):

* ``persisted_updates_per_s``: one process, one tracker, one session,
  ``update_interval_ms=0`` (every update committed: session row, snapshot,
  history thinning, event), each call building its ``InProgress`` state, as
  task code does. Timed until ``tracker.flush()`` returns, so every update
  is committed, and checked: the log must hold one event per update.
  Updates are written behind by the tracker's writer thread, many per
  transaction (group commit). Median over ``--repeats`` runs of
  ``--updates`` updates: by default more than the writer's queue holds
  (10,000), so the figure is the sustained rate, with the caller held
  back whenever the database falls behind.
  ``one_transaction_per_update_median``: the same (a tenth as many
  updates) with write-behind off (``background=False``), each update its
  own transaction in the caller's thread. For PostgreSQL also
  ``bare_psycopg_floor_median``: that one-transaction-per-update shape
  written with bare psycopg, the ceiling for one sequential writer.
* ``reads``: with ``--sessions`` sessions stored (2 % active, the rest
  finished, each with two sub-operations, created over 30 days), the median
  of ``--reads`` calls of ``get_stats`` and of ``list_sessions`` for a page
  of 50 active sessions (statuses initializing, in_progress, paused), plus a
  page of one operation's sessions and a ``count_sessions`` of the active.
* ``create_session_us``: what ``tracker.create_session`` costs its caller
  (a tracker with its threads, as in production), p50 and p99 over
  ``--creations`` calls, one after another; then every session is checked
  to be in the store after ``flush``.
* ``visible_ms``: from the start of ``create_session`` in this process to
  ``get_session`` finding the session in another (the watcher of
  ``task_throughput.py``, polling every millisecond), p50 and p99 of
  ``--visibility`` sessions created one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import URL

from celery_progress_mcp import (
    Cancelled,
    Completed,
    Failed,
    Initializing,
    InProgress,
    Paused,
    ProgressConfig,
    ProgressSession,
    ProgressState,
    ProgressTracker,
    SessionQuery,
    SubOperation,
    SubOperationState,
)
from celery_progress_mcp.store.sql import SqlStore, codec, normalize_url, upgrade
from celery_progress_mcp.store.sql.schema import counters, live_column, sessions, sub_operations

ACTIVE = ["initializing", "in_progress", "paused"]
#: Targets of the issue, for the ``met`` fields.
TARGET_UPDATES_PER_S = 2000
TARGET_STATS_MS = 50
TARGET_PAGE_MS = 20


# -- databases -----------------------------------------------------------------------


@contextmanager
def private_database(kind: str, base_url: str | None) -> Iterator[str]:
    """An empty, migrated database of ``kind``; removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cpm-bench-") as directory:
            url = f"sqlite:///{Path(directory) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    assert base_url is not None
    base = normalize_url(base_url)
    name = f"cpm_bench_{os.getpid()}_{random.randrange(1 << 30)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if kind == "postgresql":
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
            url: URL = base.update_query_dict({"options": f"-csearch_path={name}"})
        else:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            url = base.set(database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        upgrade(rendered)
        yield rendered
    finally:
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
            else:
                conn.execute(text(f"DROP DATABASE `{name}`"))
        admin.dispose()


# -- writes ----------------------------------------------------------------------------


def updates_per_s(url: str, updates: int, *, write_behind: bool = True) -> float:
    """Updates per second, timed until every one is committed (``flush``), and
    checked: the log must hold one ProgressUpdated event per update.

    ``write_behind=False`` (a tracker without background threads) writes each
    update in the caller's thread, one transaction each, for comparison."""
    store = SqlStore(url)
    tracker = ProgressTracker(
        ProgressConfig(update_interval_ms=0), store=store, background=write_behind
    )
    session_id = tracker.create_session("bench")
    tracker.update_progress(session_id, InProgress(percentage=0.0, current_step="start"))
    tracker.flush()  # the creation and the start are written behind too
    first_seq = store.last_seq()
    started = time.perf_counter()
    for i in range(updates):
        tracker.update_progress(
            session_id, InProgress(percentage=(i % 1000) / 10.0, current_step="step")
        )
    tracker.flush()
    elapsed = time.perf_counter() - started
    logged = _count_events(store, first_seq)
    tracker.close()
    store.close()
    if logged != updates:
        raise SystemExit(f"{url}: {updates} updates made, {logged} events logged")
    return updates / elapsed


def create_cost_us(url: str, creations: int) -> dict[str, float]:
    """p50 and p99 of ``create_session`` in the caller's thread, in microseconds."""
    store = SqlStore(url)
    config = ProgressConfig(max_concurrent_sessions=creations + 1)
    with ProgressTracker(config, store=store) as tracker:
        tracker.create_session("warm-up")
        timings = []
        ids = []
        for _ in range(creations):
            started = time.perf_counter()
            ids.append(tracker.create_session("bench"))
            timings.append((time.perf_counter() - started) * 1e6)
        tracker.flush()
        missing = [session_id for session_id in ids if store.get(session_id) is None]
    store.close()
    if missing:
        raise SystemExit(f"{url}: {len(missing)} created sessions are not in the store")
    timings.sort()
    return {
        "p50": round(timings[len(timings) // 2], 1),
        "p99": round(timings[int(len(timings) * 0.99)], 1),
    }


def visible_ms(url: str, samples: int) -> dict[str, float]:
    """p50 and p99 of the delay until another process sees a new session, in ms."""
    here = Path(__file__).resolve().parent
    watching = subprocess.Popen(
        [sys.executable, str(here / "task_throughput.py"), "--watch", url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watching.stdin is not None
    assert watching.stdout is not None
    if watching.stdout.readline().strip() != "ready":
        raise SystemExit("the watcher did not start")
    delays_ms = []
    store = SqlStore(url)
    try:
        with ProgressTracker(ProgressConfig(), store=store) as tracker:
            for _ in range(samples):
                sent = time.time()
                session_id = tracker.create_session("bench")
                watching.stdin.write(f"{session_id} {sent!r}\n")
                watching.stdin.flush()
                delays_ms.append(float(watching.stdout.readline()))
    finally:
        watching.stdin.close()
        watching.wait(30)
        store.close()
    if any(delay < 0 for delay in delays_ms):
        raise SystemExit(f"{url}: a session was never seen by the other process")
    delays_ms.sort()
    return {
        "p50": round(delays_ms[len(delays_ms) // 2], 2),
        "p99": round(delays_ms[int(len(delays_ms) * 0.99)], 2),
    }


def _count_events(store: SqlStore, after: int) -> int:
    count = 0
    while page := store.events_since(after, limit=1000):
        count += sum(1 for event in page if event.event_type == "ProgressUpdated")
        after = page[-1].seq
    return count


def postgres_floor_per_s(url: str, updates: int) -> float:
    """The same transaction shape with bare psycopg and none of the package's code:
    lock and read the session row (one round trip), then update it, add a
    snapshot and an event numbered from the sequence row, commit (pipelined,
    one more round trip, no wait for the WAL flush). What this machine allows
    one process at best, for comparison with ``persisted_updates_per_s``."""
    import psycopg

    parsed = normalize_url(url).set(drivername="postgresql")
    conninfo = parsed.render_as_string(hide_password=False)
    now = datetime.now(UTC).replace(tzinfo=None)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO progress_sessions VALUES "
            "('floor', 'bench', NULL, 'in_progress', 0, '{}', '{}', %s, %s, %s, 0, 0)",
            (now, now, now),
        )
        conn.commit()
        started = time.perf_counter()
        for i in range(updates):
            with conn.pipeline():
                conn.execute(
                    "SELECT snapshot_count, revision FROM progress_sessions "
                    "WHERE id = 'floor' FOR UPDATE"
                ).fetchone()
            with conn.pipeline():
                conn.execute("SET LOCAL synchronous_commit TO OFF")
                conn.execute(
                    "UPDATE progress_sessions SET state = %s, percentage = %s, updated_at = %s, "
                    "snapshot_count = %s, revision = %s WHERE id = 'floor'",
                    ('{"status":"in_progress","percentage":1.0}', i % 100, now, i + 1, i),
                )
                conn.execute(
                    "INSERT INTO progress_snapshots VALUES ('floor', %s, %s)", (i, '{"state":{}}')
                )
                seq = conn.execute(
                    "UPDATE progress_sequence SET value = value + 1 WHERE id = 1 RETURNING value"
                )
                conn.execute(
                    "INSERT INTO progress_events SELECT value, 'floor', 'bench', "
                    "'ProgressUpdated', %s, '{}' FROM progress_sequence WHERE id = 1",
                    (now,),
                )
                conn.commit()
            seq.fetchone()
        return updates / (time.perf_counter() - started)


# -- reads --------------------------------------------------------------------------------


def _state(status: str, at: datetime) -> ProgressState:
    if status == "initializing":
        return Initializing()
    if status == "in_progress":
        return InProgress(percentage=random.uniform(0, 100), current_step="working")
    if status == "paused":
        return Paused(reason="maintenance", paused_at_percentage=40.0)
    if status == "completed":
        return Completed(completed_at=at, result_summary="ok", duration_seconds=60.0)
    if status == "failed":
        return Failed(failed_at=at, error_message="boom", failed_at_percentage=30.0)
    return Cancelled(cancelled_at=at, reason="user", cancelled_at_percentage=20.0)


def populate(url: str, count: int) -> None:
    """``count`` sessions, written in bulk (the reads are what is measured)."""
    random.seed(7)
    now = datetime.now(UTC)
    weights = {
        "initializing": 0.004,
        "in_progress": 0.012,
        "paused": 0.004,
        "completed": 0.9,
        "failed": 0.05,
        "cancelled": 0.03,
    }
    engine = create_engine(url)
    rows: list[dict[str, Any]] = []
    subs: list[dict[str, Any]] = []
    totals = dict.fromkeys(weights, 0)

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(sessions), rows)
            conn.execute(insert(sub_operations), subs)
        rows.clear()
        subs.clear()

    for index in range(count):
        status = random.choices(list(weights), list(weights.values()))[0]
        created = now - timedelta(seconds=random.uniform(0, 30 * 86400))
        session_id = f"{index:08d}-{random.getrandbits(64):016x}"
        members = tuple(
            SubOperation(
                id=f"member-{member}",
                name=f"Member {member}",
                state=SubOperationState.COMPLETED if status == "completed" else "pending",
            )
            for member in range(2)
        )
        session = ProgressSession(
            id=session_id,
            operation_id=f"tasks.job_{index % 50}",
            created_at=created,
            updated_at=created + timedelta(seconds=60),
            state=_state(status, created + timedelta(seconds=60)),
            sub_operations=members,
            metadata={"index": index},
            heartbeat_at=created + timedelta(seconds=60),
        )
        values = codec.session_values(session)
        values.update(snapshot_count=0, revision=random.getrandbits(62))
        rows.append(values)
        subs.extend(codec.sub_operation_values(session_id, i, sub) for i, sub in enumerate(members))
        totals[status] += 1
        if len(rows) >= 5000:
            flush()
    if rows:
        flush()
    with engine.begin() as conn:
        conn.execute(
            update(counters).values(
                created=count,
                completed=totals["completed"],
                failed=totals["failed"],
                cancelled=totals["cancelled"],
                completed_duration_s=60.0 * totals["completed"],
                **{live_column(status): number for status, number in totals.items()},
            )
        )
        if engine.dialect.name == "postgresql" or engine.dialect.name == "sqlite":
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE TABLE progress_sessions, progress_sub_operations"))
    engine.dispose()


def median_ms(call: Callable[[], object], reads: int) -> float:
    call()  # warm: connection, compiled statement
    timings = []
    for _ in range(reads):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 2)


def read_latencies(url: str, count: int, reads: int) -> dict[str, Any]:
    populate(url, count)
    store = SqlStore(url)
    active = SessionQuery(statuses=ACTIVE, limit=50)
    stats = store.stats()
    assert stats.total_created == count
    page = store.list_sessions(active)
    assert len(page) == min(50, stats.active_sessions)
    assert all(session.status in ACTIVE for session in page)
    figures = {
        "sessions": count,
        "active_sessions": stats.active_sessions,
        "get_stats_ms": median_ms(store.stats, reads),
        "active_page_50_ms": median_ms(lambda: store.list_sessions(active), reads),
        "active_page_50_offset_500_ms": median_ms(
            lambda: store.list_sessions(SessionQuery(statuses=ACTIVE, limit=50, offset=500)),
            reads,
        ),
        "operation_page_50_ms": median_ms(
            lambda: store.list_sessions(SessionQuery(operation_id="tasks.job_7", limit=50)),
            reads,
        ),
        "count_active_ms": median_ms(lambda: store.count_sessions(active), reads),
    }
    figures["get_stats_met"] = figures["get_stats_ms"] <= TARGET_STATS_MS
    figures["active_page_met"] = figures["active_page_50_ms"] <= TARGET_PAGE_MS
    store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--creations", type=int, default=2000)
    parser.add_argument("--visibility", type=int, default=200)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("CELERY_PROGRESS_TEST_POSTGRES_URL")
    )
    parser.add_argument("--mysql-url", default=os.environ.get("CELERY_PROGRESS_TEST_MYSQL_URL"))
    args = parser.parse_args()
    kinds: dict[str, str | None] = {"sqlite": None}
    if args.postgres_url:
        kinds["postgresql"] = args.postgres_url
    if args.mysql_url:
        kinds["mariadb"] = args.mysql_url
    writes: dict[str, Any] = {}
    reads: dict[str, Any] = {}
    creates: dict[str, Any] = {}
    visible: dict[str, Any] = {}
    for kind, base_url in kinds.items():
        runs = []
        for _ in range(args.repeats):
            with private_database(kind, base_url) as url:
                runs.append(updates_per_s(url, args.updates))
        unbatched = []
        for _ in range(args.repeats):
            with private_database(kind, base_url) as url:
                unbatched.append(updates_per_s(url, args.updates // 10, write_behind=False))
        median = round(statistics.median(runs))
        writes[kind] = {
            "median": median,
            "runs": [round(run) for run in runs],
            "met": median >= TARGET_UPDATES_PER_S,
            "one_transaction_per_update_median": round(statistics.median(unbatched)),
        }
        if kind == "postgresql":
            floors = []
            for _ in range(args.repeats):
                with private_database(kind, base_url) as url:
                    floors.append(postgres_floor_per_s(url, args.updates // 10))
            writes[kind]["bare_psycopg_floor_median"] = round(statistics.median(floors))
        with private_database(kind, base_url) as url:
            creates[kind] = create_cost_us(url, args.creations)
        with private_database(kind, base_url) as url:
            visible[kind] = visible_ms(url, args.visibility)
        with private_database(kind, base_url) as url:
            reads[kind] = read_latencies(url, args.sessions, args.reads)
    print(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "persisted_updates_per_s": writes,
                "targets": {
                    "persisted_updates_per_s": TARGET_UPDATES_PER_S,
                    "get_stats_ms": TARGET_STATS_MS,
                    "active_page_50_ms": TARGET_PAGE_MS,
                },
                "reads": reads,
                "create_session_us": creates,
                "visible_ms": visible,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
