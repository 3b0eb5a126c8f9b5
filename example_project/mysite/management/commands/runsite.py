"""``manage.py runsite``: the example's Celery worker and the site, together; Ctrl-C stops both.

The worker is the README's ``celery -A proj worker`` (prefork, 3 processes:
the pipeline waits on its chord in one), started as a child process without
Django's settings, as it runs beside the site by hand. The site is
``runserver`` (without its reloader, so that the worker is started once), on
``127.0.0.1:8000`` unless an address and port are given.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

#: Where ``celery -A proj`` finds ``proj``: the directory of manage.py.
EXAMPLE_DIR = Path(__file__).resolve().parents[3]
#: The worker's pool processes (the pipeline waits on its chord in one of them).
WORKER_CONCURRENCY = 3
#: How long the worker gets to finish its tasks once asked to stop, in seconds.
WORKER_STOP_S = 20.0


def _worker_command(concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "proj",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
    ]


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.terminate()  # a warm shutdown: running tasks finish
    try:
        worker.wait(WORKER_STOP_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


class Command(BaseCommand):
    help = "Run the example's Celery worker and the site together (Ctrl-C stops both)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="as runserver takes it"
        )
        parser.add_argument("--concurrency", type=int, default=WORKER_CONCURRENCY)

    def handle(self, *args: Any, addrport: str, concurrency: int, **options: Any) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        # A process group of its own: Ctrl-C or a SIGTERM to this one's group reaches the
        # worker through _stop alone, as one warm shutdown its pool processes are part of.
        worker = subprocess.Popen(
            _worker_command(concurrency), cwd=EXAMPLE_DIR, env=env, start_new_session=True
        )
        self.stdout.write(f"Started the Celery worker (pid {worker.pid}).")

        def stop_on_terminate(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(0)  # unwinds runserver, and the finally below stops the worker

        signal.signal(signal.SIGTERM, stop_on_terminate)
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            _stop(worker)
