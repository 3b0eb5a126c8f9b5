"""update_state's states and metas as progress."""

from __future__ import annotations

import math

import pytest

from celery_progress_mcp.celery.update_state import ProgressRecorder, Translation, translate


def test_celery_progress_meta() -> None:
    meta = {"pending": False, "current": 3, "total": 12, "percent": 25.0, "description": "rows"}
    assert translate("PROGRESS", meta) == Translation(
        percentage=25.0, current=3.0, total=12.0, step="rows"
    )


def test_plain_meta() -> None:
    found = translate("PROGRESS", {"percentage": 40, "step": "load", "eta_seconds": 12})
    assert found == Translation(percentage=40.0, step="load", eta_seconds=12.0)


def test_counts_alone() -> None:
    found = translate("PROGRESS", {"current": 5, "total": 10})
    assert found == Translation(current=5.0, total=10.0)


@pytest.mark.parametrize("state", ["STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED", None])
def test_celery_states_are_left_to_the_signals(state: str | None) -> None:
    assert translate(state, {"percentage": 10}) is None


def test_a_custom_state_is_recorded_in_metadata() -> None:
    found = translate("DOWNLOADING", {"file": "a.csv"})
    assert found == Translation(
        metadata={"celery_state": {"state": "DOWNLOADING", "meta": {"file": "a.csv"}}}
    )


def test_a_custom_state_with_progress_keys_reports_both() -> None:
    found = translate("UPLOADING", {"percent": 60})
    assert found is not None
    assert found.percentage == 60.0
    assert found.metadata is not None
    assert found.metadata["celery_state"]["state"] == "UPLOADING"


def test_progress_without_progress_keys_is_kept_as_a_custom_state() -> None:
    found = translate("PROGRESS", {"phase": "warming up"})
    assert found is not None
    assert found.percentage is None
    assert found.metadata is not None
    assert found.metadata["celery_state"]["meta"] == {"phase": "warming up"}


def test_odd_values_are_cleaned() -> None:
    found = translate("PROGRESS", {"percent": 250, "current": math.nan, "total": -1})
    assert found == Translation(percentage=100.0)
    found = translate("ODD", {"value": object()})
    assert found is not None
    assert found.metadata is not None
    assert isinstance(found.metadata["celery_state"]["meta"], str)  # a repr, not the object


class _Task:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def update_state(self, *, state: str, meta: dict[str, object]) -> None:
        self.calls.append((state, meta))


def test_the_recorder_sends_celery_progress_meta() -> None:
    task = _Task()
    recorder = ProgressRecorder(task)
    assert recorder.set_progress(1, 3, "first") == (
        "PROGRESS",
        {"pending": False, "current": 1, "total": 3, "percent": 33.33, "description": "first"},
    )
    recorder.increment_progress(2, "done")
    assert task.calls[-1][1]["current"] == 3
    assert task.calls[-1][1]["percent"] == 100.0
