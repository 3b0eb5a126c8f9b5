"""The Celery app: one ``install(app)`` line turns progress tracking on.

By default everything lives in one directory (``EXAMPLE_DATA_DIR``, else
``./.example-data``), no server needed: a ``filesystem://`` broker, an
SQLite result backend, and the progress store in that same SQLite database
(``install`` uses the result backend's database when it is ``db+...``); the
Django site beside this project (``mysite/``) keeps its tables there too.
Point ``EXAMPLE_BROKER_URL``, ``EXAMPLE_RESULT_BACKEND`` and
``CELERY_PROGRESS_STORE_URL`` at Redis, RabbitMQ and PostgreSQL to spread
the work over machines; ``EXAMPLE_QUEUE`` names the queue the tasks go to
(``celery`` unless said: tests give each run a queue of its own).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from celery_progress_mcp import install

DATA_DIR = Path(os.environ.get("EXAMPLE_DATA_DIR", ".example-data")).resolve()
#: The example's SQLite database: Celery's results, the progress store, the site's tables.
DATABASE = DATA_DIR / "example.sqlite3"
BROKER_URL = os.environ.get("EXAMPLE_BROKER_URL", "filesystem://")
RESULT_BACKEND = os.environ.get("EXAMPLE_RESULT_BACKEND", f"db+sqlite:///{DATABASE}")

app = Celery("proj", broker=BROKER_URL, backend=RESULT_BACKEND, include=["proj.tasks"])

if BROKER_URL.startswith("filesystem://"):
    folders = {name: DATA_DIR / "broker" / name for name in ("messages", "control", "processed")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {
        "data_folder_in": str(folders["messages"]),
        "data_folder_out": str(folders["messages"]),
        "control_folder": str(folders["control"]),
        "processed_folder": str(folders["processed"]),
        "store_processed": False,
        "polling_interval": 0.05,
    }

app.conf.update(
    task_track_started=True,
    result_extended=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_default_queue=os.environ.get("EXAMPLE_QUEUE", "celery"),
    # Progress: write at most twice a second per task (the latest value always).
    progress_update_interval_ms=500,
    progress_heartbeat_timeout_seconds=30,
    # install() reads the progress_* keys here instead of the CELERY_PROGRESS_* variables:
    # the store's URL is passed on, so that CELERY_PROGRESS_STORE_URL still chooses the store.
    progress_store_url=os.environ.get("CELERY_PROGRESS_STORE_URL"),
)

tracker = install(app)
