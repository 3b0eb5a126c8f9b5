"""Dashboard live-update load, printed as JSON.

    python benchmarks/dashboard.py [--sessions 1000] [--rate-hz 10] [--clients 10]
                                   [--seconds 20] [--window-ms 500] [--list-sessions 100000]

A server process runs the dashboard (uvicorn, one event loop) over a tracker
whose producer thread updates ``--sessions`` in-progress sessions ``--rate-hz``
times a second each, as task code would (``update_progress``; the tracker
coalesces per ``--window-ms``, 500 ms by default as in ``ProgressConfig``).
This process holds ``--clients`` SSE connections to ``/api/events`` (every
session, no filter) and measures, over ``--seconds`` after a warm-up:

* ``updates_delivered_per_s``: session updates received, all clients together
  (``per_client``: one browser's share), and the frames and bytes per second
  each client gets;
* ``delay_ms`` p50/p99/max: from the moment the update was written (the
  event's timestamp) to its arrival at the client; it includes the tracker's
  coalescing window and the dashboard's 250 ms frame interval;
* ``server_cpu_cores``: CPU time of the server's event-loop thread (HTTP,
  SSE, the coalescing hub) per wall second; the producer thread and the
  tracker's flusher are measured apart (``producer_cpu_cores``,
  ``tracker_other_cpu_cores``) and ``process_cpu_cores`` is the sum.

``--list-sessions N`` also times pages of the session list (first, last,
filtered, searched; each with its total) over N sessions, two thirds of them
completed, in the memory store and in SQLite (``--list-stores``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: An update's timestamp in a frame (``"ts":1750000000.123``).
_TS = re.compile(r'"ts":([0-9.eE+-]+)')
#: Warm-up before measuring, in seconds (clients connected, producer running).
WARMUP_S = 3.0


# -- the server process ------------------------------------------------------------------------


def _thread_cpu_s(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process (Linux /proc)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _process_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
    from celery_progress_mcp.web import create_app

    config = ProgressConfig(
        update_interval_ms=args.window_ms, max_concurrent_sessions=args.sessions * 2
    )
    tracker = ProgressTracker(config)
    ids = [tracker.create_session("bench", {"worker": f"w{i % 8}"}) for i in range(args.sessions)]
    for session_id in ids:
        tracker.update_progress(session_id, InProgress(percentage=0.0))
    app = create_app(tracker)
    threads: dict[str, int] = {}
    stop = threading.Event()
    period_s = 1.0 / args.rate_hz

    def produce() -> None:
        threads["producer"] = threading.get_native_id()
        tick = 0
        next_at = time.monotonic()
        while not stop.is_set():
            tick += 1
            percentage = (tick % 1000) / 10
            for session_id in ids:
                tracker.update_progress(
                    session_id,
                    InProgress(percentage=percentage, current_step=f"batch {tick}"),
                )
            next_at += period_s
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_at = time.monotonic()  # behind: do not try to catch up in a burst

    def control() -> None:
        """Parent's commands on stdin: 'start' and 'stop' bracket the measurement."""
        marks: dict[str, dict[str, float]] = {}
        for line in sys.stdin:
            command = line.strip()
            snapshot = {name: _thread_cpu_s(tid) for name, tid in threads.items()}
            snapshot["process"] = _process_cpu_s()
            snapshot["wall"] = time.monotonic()
            snapshot["seq"] = float(tracker.store.last_seq())
            marks[command] = snapshot
            if command == "stop":
                start, end = marks["start"], marks["stop"]
                wall = end["wall"] - start["wall"]
                used = {key: (end[key] - start[key]) / wall for key in start if key != "wall"}
                print(json.dumps({"wall_s": wall, "cores": used}), flush=True)
                stop.set()
                server.should_exit = True
                return

    uv_config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(uv_config)
    threads["loop"] = threading.get_native_id()
    threading.Thread(target=produce, daemon=True).start()
    threading.Thread(target=control, daemon=True).start()
    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        print("READY", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()
    tracker.close()


# -- the clients -----------------------------------------------------------------------------------


class ClientStats:
    def __init__(self) -> None:
        self.updates = 0
        self.frames = 0
        self.bytes = 0
        self.delays_s: list[float] = []
        self.measuring = False


async def sse_client(url: str, stats: ClientStats, done: asyncio.Event) -> None:
    import httpx

    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as client,
        client.stream("GET", url) as response,
    ):
        data = ""
        async for line in response.aiter_lines():
            if done.is_set():
                return
            if line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data:
                arrived = time.time()
                size, raw, data = len(data), data, ""
                if not stats.measuring or '"updates"' not in raw:
                    continue
                # A regex, not json.loads: ten clients in one process must not
                # be the bottleneck they are measuring.
                stamps = _TS.findall(raw)
                stats.frames += 1
                stats.bytes += size
                stats.updates += len(stamps)
                stats.delays_s.extend(arrived - float(stamp) for stamp in stamps)


async def measure(args: argparse.Namespace, server: subprocess.Popen[str]) -> dict[str, Any]:
    assert server.stdin is not None
    assert server.stdout is not None
    url = f"http://127.0.0.1:{args.port}/api/events"
    done = asyncio.Event()
    clients = [ClientStats() for _ in range(args.clients)]
    tasks = [asyncio.create_task(sse_client(url, stats, done)) for stats in clients]
    await asyncio.sleep(WARMUP_S)
    for stats in clients:
        stats.measuring = True
    server.stdin.write("start\n")
    server.stdin.flush()
    await asyncio.sleep(args.seconds)
    server.stdin.write("stop\n")
    server.stdin.flush()
    for stats in clients:
        stats.measuring = False
    cpu = json.loads(await asyncio.to_thread(server.stdout.readline))
    done.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays = sorted(d for stats in clients for d in stats.delays_s)
    wall = cpu["wall_s"]
    cores = cpu["cores"]
    total_updates = sum(stats.updates for stats in clients)

    def pct(q: float) -> float:
        return round(1000 * delays[min(len(delays) - 1, int(q * len(delays)))], 1)

    return {
        "sessions": args.sessions,
        "update_rate_hz_per_session": args.rate_hz,
        "tracker_window_ms": args.window_ms,
        "sse_clients": args.clients,
        "measured_s": round(wall, 2),
        "events_published_per_s": round(cores.pop("seq"), 0),
        "updates_delivered_per_s": round(total_updates / wall, 0),
        "per_client": {
            "updates_per_s": round(total_updates / wall / args.clients, 0),
            "frames_per_s": round(sum(s.frames for s in clients) / wall / args.clients, 2),
            "kib_per_s": round(sum(s.bytes for s in clients) / wall / args.clients / 1024, 1),
        },
        "delay_ms": {
            "p50": pct(0.50),
            "p99": pct(0.99),
            "max": round(1000 * delays[-1], 1) if delays else None,
        },
        "server_cpu_cores": round(cores.get("loop", 0.0), 3),
        "producer_cpu_cores": round(cores.get("producer", 0.0), 3),
        "tracker_other_cpu_cores": round(
            cores["process"] - cores.get("loop", 0.0) - cores.get("producer", 0.0), 3
        ),
        "process_cpu_cores": round(cores["process"], 3),
        "targets": {"p99_delay_ms_max": 1000, "server_cpu_cores_max": 1.0},
    }


def run_load(args: argparse.Namespace) -> dict[str, Any]:
    from tests.web.server import free_port  # the repo's own helper

    args.port = free_port()
    command = [
        sys.executable,
        __file__,
        "--serve",
        f"--port={args.port}",
        f"--sessions={args.sessions}",
        f"--rate-hz={args.rate_hz}",
        f"--window-ms={args.window_ms}",
    ]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"the server did not start: {line!r}")
        return asyncio.run(measure(args, server))
    finally:
        server.terminate()
        server.wait(timeout=20)


# -- list pages over many sessions ---------------------------------------------------------------


def list_pages(count: int, store_kind: str, folder: Path) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from celery_progress_mcp import ProgressConfig, ProgressTracker
    from celery_progress_mcp.store.base import Store
    from celery_progress_mcp.store.memory import MemoryStore
    from celery_progress_mcp.store.sql import SqlStore
    from celery_progress_mcp.web import create_app

    store: Store = (
        MemoryStore() if store_kind == "memory" else SqlStore(f"sqlite:///{folder / 'list.db'}")
    )
    tracker = ProgressTracker(ProgressConfig(max_concurrent_sessions=count + 1), store=store)
    for index in range(count):
        session_id = tracker.create_session(f"op{index % 20}")
        if index % 3:
            tracker.complete_session(session_id)
    app = create_app(tracker)
    timings: dict[str, float] = {}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for name, path in {
            "first_page": "/api/sessions?limit=50",
            "last_page": f"/api/sessions?limit=50&offset={count - 50}",
            "filtered_page": "/api/sessions?limit=50&status=completed&operation_id=op7",
            "search_page": "/api/sessions?limit=50&q=op7",
            "html_first_page": "/?limit=50",
        }.items():
            samples = []
            for _ in range(7):
                started = time.perf_counter()
                response = client.get(path)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
            timings[name] = round(1000 * statistics.median(samples), 1)
    tracker.close()
    return {"sessions": count, "store": store_kind, "median_ms": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--window-ms", type=int, default=500)
    parser.add_argument("--list-sessions", type=int, default=0)
    parser.add_argument(
        "--list-stores", nargs="+", choices=["memory", "sqlite"], default=["memory", "sqlite"]
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    result: dict[str, Any] = {"live": run_load(args)}
    if args.list_sessions:
        with tempfile.TemporaryDirectory() as folder:
            result["list_pages"] = [
                list_pages(args.list_sessions, kind, Path(folder)) for kind in args.list_stores
            ]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
