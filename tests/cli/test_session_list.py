"""``sessions list`` at 80 columns, at wider terminals, and piped (issue #13, point 7).

At 80 columns every row keeps its id, operation, state and percentage, the
step shortened to fit; no width drops or chops a column; piped output (rich
assumes 80 columns there unless told) is never shortened; ``--json`` does
not depend on the width.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
from celery_progress_mcp.cli import main

#: A step longer than any terminal here leaves room for.
LONG_STEP = "reading customer records from the warehouse export, batch 3 of 120 " * 3
#: A step that fits a 200-column terminal whole.
STEP = "batch 3/120 of customers.csv"
OPERATION = "proj.tasks.import_customer_records_from_the_warehouse"
#: The end of each row at 160 columns and more: how long ago the session changed.
AGE = re.compile(r"\d+[smh] ago$")


def _sessions(store_url: str, step: str) -> dict[str, str]:
    with ProgressTracker(ProgressConfig(store_url=store_url, update_interval_ms=0)) as tracker:
        running = tracker.create_session(OPERATION)
        tracker.update_progress(running, InProgress(percentage=42.0, current_step=step))
        done = tracker.create_session("proj.tasks.process_file")
        tracker.complete_session(done, "{'processed': 50}")
        failed = tracker.create_session("proj.tasks.fail_on_purpose")
        tracker.fail_session(failed, "boom\nat line 3", "ValueError")
    return {"running": running, "done": done, "failed": failed}


def _list(store_url: str, columns: int | None, *options: str) -> str:
    """``sessions list`` as a pipe, told ``columns`` (or nothing) through COLUMNS."""
    env = {
        "CELERY_PROGRESS_STORE_URL": store_url,
        "COLUMNS": None if columns is None else str(columns),
        # Either would make rich take the pipe for a terminal.
        "FORCE_COLOR": None,
        "TTY_COMPATIBLE": None,
    }
    result = CliRunner().invoke(
        main, ["sessions", "list", *options], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def _row(output: str, session_id: str) -> str:
    (row,) = [line for line in output.splitlines() if session_id in line]
    return row


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'progress.db'}"


def _whole_or_shortened(shown: str, whole: str) -> bool:
    """``shown`` is ``whole``, or a start of it ending in an ellipsis."""
    if shown == whole:
        return True
    return len(shown) > 1 and shown.endswith("…") and whole.startswith(shown[:-1])


@pytest.mark.parametrize("columns", [80, 120, 160, 200])
def test_every_row_fits_and_keeps_id_operation_state_and_percentage(
    store_url: str, columns: int
) -> None:
    ids = _sessions(store_url, LONG_STEP)
    output = _list(store_url, columns)
    lines = output.splitlines()
    assert max(cell_len(line) for line in lines) <= columns
    assert lines[0].split()[:5] == ["id", "operation", "state", "%", "step"]
    expected = {
        ids["running"]: (OPERATION, "in_progress", "42.0", " ".join(LONG_STEP.split())),
        ids["done"]: ("proj.tasks.process_file", "completed", "100.0", "{'processed': 50}"),
        ids["failed"]: ("proj.tasks.fail_on_purpose", "failed", "0.0", "boom at line 3"),
    }
    for session_id, (operation, state, percentage, step) in expected.items():
        row = _row(output, session_id)
        if columns >= 160:
            assert AGE.search(row), row
            row = AGE.sub("", row).rstrip()
        shown = row.split(maxsplit=4)
        assert shown[0] == session_id
        assert _whole_or_shortened(shown[1], operation.rsplit(".", 1)[-1]), row
        assert shown[2:4] == [state, percentage]
        assert _whole_or_shortened(shown[4], step), row
    if columns >= 160:
        assert lines[0].split()[-1] == "updated"


def test_at_200_columns_nothing_is_shortened(store_url: str) -> None:
    ids = _sessions(store_url, STEP)
    output = _list(store_url, 200)
    assert "…" not in output
    assert OPERATION.rsplit(".", 1)[-1] in _row(output, ids["running"])
    assert STEP in _row(output, ids["running"])
    assert all(AGE.search(line) for line in output.splitlines()[1:])


def test_piped_rows_are_never_shortened(store_url: str) -> None:
    ids = _sessions(store_url, LONG_STEP)
    output = _list(store_url, None)
    assert "…" not in output
    running = _row(output, ids["running"])
    assert LONG_STEP.strip() in running
    assert OPERATION.rsplit(".", 1)[-1] in running
    assert AGE.search(running)


def test_json_does_not_depend_on_the_width(store_url: str) -> None:
    _sessions(store_url, LONG_STEP)
    narrow = json.loads(_list(store_url, 80, "--json"))
    piped = json.loads(_list(store_url, None, "--json"))
    assert narrow == piped
    assert LONG_STEP in [session["state"].get("current_step") for session in narrow]
