"""Real Celery workers for the tests: prefork subprocesses of ``worker_app``.

``start_worker`` waits until the worker answers a ping; ``Worker`` can stop
it, kill it (the whole process group, as a machine going away would), and
name its pool processes. Tests wait with :func:`celery_progress_mcp.testing.eventually`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from celery_progress_mcp.testing import eventually
from tests.celery.project import Project

__all__ = ["ROOT", "Worker", "start_worker"]

ROOT = Path(__file__).resolve().parents[2]
#: A worker that does not answer a ping within this long failed to start.
START_TIMEOUT_S = 90.0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    name: str
    log: Path

    def pool_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once (a machine gone)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_worker(
    project: Project,
    log_dir: Path,
    *,
    concurrency: int = 2,
    tag: str = "w",
    options: Sequence[str] = (),
) -> Worker:
    """A prefork worker with ``concurrency`` pool processes, consuming the project's queue.

    ``options``: more options of ``celery worker``, such as ``-E``.
    """
    config = project.config
    name = f"{config.prefix}-{tag}@{socket.gethostname()}"
    env = {**os.environ, **config.env(), "PYTHONPATH": str(ROOT)}
    log = log_dir / f"{config.prefix}-{tag}.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.celery.worker_app",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "-Q",
        config.prefix,
        "-n",
        name,
        *options,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, name, log)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited at start:\n{worker.log_tail()}")
        pinged = project.app.control.ping(destination=[name], timeout=1.0)
        return bool(pinged) and len(worker.pool_pids()) >= concurrency

    try:
        eventually(answers, timeout_s=START_TIMEOUT_S, interval_s=0.2, what="the worker's start")
    except AssertionError:
        worker.kill()
        raise RuntimeError(
            f"the worker did not start within {START_TIMEOUT_S} s:\n{worker.log_tail()}"
        ) from None
    return worker
