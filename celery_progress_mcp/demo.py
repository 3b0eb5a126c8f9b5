"""``make demo``: the example project's pipeline, live in the terminal.

On the embedded default (no server: a ``filesystem://`` broker, an SQLite
result backend and the progress store in the same SQLite file, all in a
temporary directory) it starts a real Celery worker (prefork, 3 processes)
as a subprocess, dispatches the example's pipeline (stages as
sub-operations, a chord of chunk workers), its file-processing task, a task
that fails on purpose and one that retries, draws them live until they
end, prints the statistics, stops the worker and exits 0 if every task
ended as it should.

    python -m celery_progress_mcp.demo [--rows N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .core.models import ProgressSession

__all__ = ["main"]

#: Where the example project lives, relative to this package's source tree.
EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "example_project"
#: Pool processes of the demo's worker (the pipeline waits on its chord in one).
WORKER_PROCESSES = 3
#: The demo gives up (and fails) after this long.
DEMO_TIMEOUT_S = 300.0
#: How the four dispatched tasks must end.
EXPECTED = {
    "pipeline": "completed",
    "process_file": "completed",
    "fail_on_purpose": "failed",
    "flaky": "completed",
}


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_PROGRESS_")}
    env.pop("EXAMPLE_BROKER_URL", None)
    env.pop("EXAMPLE_RESULT_BACKEND", None)
    env["EXAMPLE_DATA_DIR"] = str(data_dir)
    paths = [str(EXAMPLE_DIR), str(EXAMPLE_DIR.parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return env


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "proj",
        "worker",
        "--pool=prefork",
        f"--concurrency={WORKER_PROCESSES}",
        "--loglevel=WARNING",
        "--hostname=demo@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    log = log_path.open("wb")
    return subprocess.Popen(command, cwd=EXAMPLE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)  # warm shutdown
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


def _stats_table(stats: Any, outcomes: dict[str, ProgressSession]) -> Table:
    table = Table(title="statistics (lifetime totals of the store)", show_header=False)
    table.add_row("sessions created", str(stats.total_created))
    table.add_row("completed", str(stats.total_completed))
    table.add_row("failed", str(stats.total_failed))
    table.add_row("cancelled", str(stats.total_cancelled))
    table.add_row("active now", str(stats.active_sessions))
    table.add_row("average duration", f"{stats.avg_session_duration_seconds:.2f} s")
    for name, session in outcomes.items():
        table.add_row(f"{name}", f"{session.state.status} ({session.percentage:.0f} %)")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the pipeline's CSV")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args(argv)
    console = Console()
    if not (EXAMPLE_DIR / "proj" / "tasks.py").exists():
        console.print(f"[red]the example project is not at {EXAMPLE_DIR}[/red]")
        return 2

    data_dir = Path(tempfile.mkdtemp(prefix="celery-progress-demo-"))
    env = _environment(data_dir)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:0] = [str(EXAMPLE_DIR), str(EXAMPLE_DIR.parent)]

    # Imported only now: the example configures itself from the environment just set.
    from proj import tasks  # type: ignore[import-not-found]
    from proj.celery import tracker  # type: ignore[import-not-found]
    from proj.data import generate_csv  # type: ignore[import-not-found]

    from .cli.terminal import all_finished, watch_sessions

    console.print(f"[bold]celery-progress-mcp demo[/bold]: data and databases in {data_dir}")
    console.print(f"store: {tracker.config.store_url}")
    worker = _start_worker(env, data_dir / "worker.log")
    succeeded = False
    try:
        orders = generate_csv(data_dir / "orders.csv", 30_000, seed=11)
        dispatched = {
            "pipeline": tasks.pipeline.delay(rows=options.rows, chunks=8),
            "process_file": tasks.process_file.delay(str(orders)),
            "fail_on_purpose": tasks.fail_on_purpose.delay(),
            "flaky": tasks.flaky.delay(),
        }
        ids = {result.id: name for name, result in dispatched.items()}
        started_s = time.monotonic()

        def select(_: Any) -> list[ProgressSession]:
            sessions = [tracker.get_session(task_id) for task_id in ids]
            for session in tracker.list_sessions(limit=20):
                if session.parent_id is None and session.id not in ids:
                    sessions.append(session)  # the pipeline's chord
            return sessions

        def done(sessions: list[ProgressSession]) -> bool:
            if time.monotonic() - started_s > DEMO_TIMEOUT_S or worker.poll() is not None:
                return True
            return all_finished(sessions)

        watch_sessions(tracker, select, until=done, console=console, title="live progress")
        outcomes = {name: tracker.get_session(result.id) for name, result in dispatched.items()}
        console.print()
        console.print(_stats_table(tracker.get_stats(), outcomes))
        wrong = {
            name: session.state.status
            for name, session in outcomes.items()
            if session.state.status != EXPECTED[name]
        }
        if wrong:
            console.print(f"[red]unexpected outcomes: {wrong}; see {data_dir / 'worker.log'}[/red]")
            return 1
        console.print("[green]every task ended as expected[/green]")
        succeeded = True
        return 0
    finally:
        _stop_worker(worker)
        tracker.close()
        if succeeded and not options.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
