"""What the Celery benchmarks share: a prefork worker started and stopped, a percentile.

A benchmark script is also the worker's app module (``-A <script>:app``), so
the worker runs with the benchmarks folder and the project's root on its path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: How long a worker may take to answer its first ping, in seconds.
WORKER_START_S = 90.0
#: How long a stopped worker may take to exit before it is killed, in seconds.
WORKER_STOP_S = 60.0


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the benchmarks folder and the project's root importable."""
    return {**env, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}


def start_worker(
    app_ref: str, env: dict[str, str], prefix: str, log: Path, client: Celery
) -> subprocess.Popen[bytes]:
    """A prefork worker (two processes) of ``app_ref`` on the queue ``prefix``,
    returned once it answers a ping."""
    name = f"{prefix}@{socket.gethostname()}"
    command = [
        sys.executable, "-m", "celery", "-A", app_ref, "worker",
        "--pool=prefork", "--concurrency=2", "--loglevel=WARNING",
        "--without-gossip", "--without-mingle", "-Q", prefix, "-n", name,
    ]  # fmt: skip
    with log.open("ab") as output:
        worker = subprocess.Popen(
            command, cwd=HERE, env=child_env(env), stdout=output, stderr=subprocess.STDOUT
        )
    deadline_s = time.monotonic() + WORKER_START_S
    while time.monotonic() < deadline_s:
        if client.control.ping(destination=[name], timeout=1.0):
            return worker
        if worker.poll() is not None:
            break
    worker.kill()
    raise RuntimeError(f"the worker did not start; see {log}")


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(WORKER_STOP_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0 to 1) of the sorted ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]
