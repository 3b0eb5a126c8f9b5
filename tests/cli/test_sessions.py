"""The commands: ``celery-progress-mcp -A ... sessions|stats|cleanup``; ``celery ... progress``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker
from celery_progress_mcp.celery import uninstall
from celery_progress_mcp.cli import main
from tests.celery.workers import ROOT

APP = "tests.cli.cli_app:app"


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'progress.db'}"
    monkeypatch.setenv("CPM_CLI_STORE", url)
    yield url
    module = sys.modules.pop("tests.cli.cli_app", None)
    if module is not None:
        uninstall(module.app)


@pytest.fixture
def sessions(store_url: str) -> dict[str, str]:
    """A running, a completed and a failed session, written by another tracker."""
    with ProgressTracker(ProgressConfig(store_url=store_url, update_interval_ms=0)) as tracker:
        running = tracker.create_session("cpmcli.work", {"celery_kind": "task"})
        tracker.update_progress(running, InProgress(percentage=42.0, current_step="halfway"))
        done = tracker.create_session("cpmcli.work")
        tracker.complete_session(done, "'ok'")
        failed = tracker.create_session("cpmcli.work")
        tracker.fail_session(failed, "boom", "ValueError")
    return {"running": running, "done": done, "failed": failed}


def _run(*arguments: str) -> str:
    result = CliRunner().invoke(main, ["-A", APP, *arguments], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_sessions_list(sessions: dict[str, str]) -> None:
    found = json.loads(_run("sessions", "list", "--json"))
    assert {session["id"] for session in found} == set(sessions.values())
    active = json.loads(_run("sessions", "list", "--active", "--json"))
    assert [session["id"] for session in active] == [sessions["running"]]
    table = _run("sessions", "list", "--status", "failed")
    assert sessions["failed"] in table
    assert "boom" in table


def test_sessions_show(sessions: dict[str, str]) -> None:
    shown = json.loads(_run("sessions", "show", sessions["running"], "--json"))
    assert shown["state"]["percentage"] == 42.0
    assert "halfway" in _run("sessions", "show", sessions["running"])


def test_sessions_watch_draws_the_sessions_until_they_end(sessions: dict[str, str]) -> None:
    output = _run("sessions", "watch", sessions["done"], sessions["failed"])
    assert sessions["done"][:8] in output
    assert "completed" in output
    assert "failed" in output


def test_sessions_cancel(sessions: dict[str, str], store_url: str) -> None:
    assert "cancelled" in _run("sessions", "cancel", sessions["running"], "--reason", "enough")
    with ProgressTracker(ProgressConfig(store_url=store_url)) as tracker:
        state = tracker.get_session(sessions["running"]).state
    assert state.status == "cancelled"
    assert state.reason == "enough"  # type: ignore[union-attr]


def test_stats_and_cleanup(sessions: dict[str, str]) -> None:
    stats = json.loads(_run("stats", "--json"))
    assert (stats["total_completed"], stats["total_failed"], stats["active_sessions"]) == (1, 1, 1)
    assert "timed out:   0" in _run("cleanup")


def test_an_unknown_session_is_an_error_not_a_traceback(sessions: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["-A", APP, "sessions", "show", "nope"])
    assert result.exit_code != 0
    assert "not found" in result.output


def test_the_same_commands_as_a_celery_sub_command(
    sessions: dict[str, str], store_url: str
) -> None:
    env = {**os.environ, "CPM_CLI_STORE": store_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", APP, "progress", "sessions", "list", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {session["id"] for session in json.loads(done.stdout)} == set(sessions.values())
