"""``-A`` means what it means to ``celery -A``: on example_project/, the app's task modules load.

The example's tasks live in ``proj.tasks``, which only ``include=[...]``
names: a command sees them only if it imports the app's task modules as a
worker does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.celery.workers import ROOT

EXAMPLE_DIR = ROOT / "example_project"
#: Guard against a command that hangs, in seconds.
COMMAND_GUARD_S = 120


def _example_env(data_dir: Path) -> dict[str, str]:
    """The embedded default in ``data_dir``, whatever this run's environment points at."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CELERY_PROGRESS_", "EXAMPLE_"))
    }
    env["EXAMPLE_DATA_DIR"] = str(data_dir)
    return env


@pytest.mark.parametrize("app", ["proj", "proj:app", "proj.celery:app"])
def test_mcp_finds_a_task_of_an_included_module(app: str, tmp_path: Path) -> None:
    """The MCP server starts with the tool (stdio; it ends when stdin does)."""
    command = Path(sys.executable).parent / "celery-progress-mcp"
    done = subprocess.run(
        [str(command), "mcp", "-A", app, "--tool", "proj.tasks.process_file"],
        cwd=EXAMPLE_DIR,
        env=_example_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_GUARD_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_celery_sub_command_on_the_example(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "proj", "progress", "sessions", "list", "--json"],
        cwd=EXAMPLE_DIR,
        env=_example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=COMMAND_GUARD_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
