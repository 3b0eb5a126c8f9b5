"""A Celery app for the command tests: ``-A tests.cli.cli_app:app``.

Its store is the SQLite file named by ``CPM_CLI_STORE``; no broker is
contacted unless a command revokes a task (memory:// then).
"""

from __future__ import annotations

import os

from celery import Celery

from celery_progress_mcp.celery import install, progress_task

app = Celery("cpmcli", broker="memory://", backend="cache+memory://")
app.conf.progress_store_url = os.environ.get("CPM_CLI_STORE", "memory://")
app.conf.progress_bus = "local"
tracker = install(app)


@progress_task(app, name="cpmcli.work", shared=False)
def work(self: object) -> None:
    return None
