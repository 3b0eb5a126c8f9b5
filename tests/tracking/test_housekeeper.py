"""``Housekeeper`` alone: timeouts (and who is spared), retention, the periodic run."""

from __future__ import annotations

import functools
import logging

import pytest

from celery_progress_mcp import Failed, ProgressConfig, ProgressSession
from celery_progress_mcp.tracking.housekeeping import Housekeeper, MayTimeOut

from .parts import Parts

TIMEOUT_S = 60.0
RETENTION_S = 600.0


def housekeeper(
    parts: Parts, flushes: list[str], may_time_out: MayTimeOut | None = None
) -> Housekeeper:
    return Housekeeper(
        parts.store,
        parts.engine,
        parts.clock,
        parts.config,
        parts.committer,
        lambda: flushes.append("flush"),
        may_time_out,
    )


def config() -> ProgressConfig:
    return ProgressConfig(session_timeout_seconds=TIMEOUT_S, finished_retention_seconds=RETENTION_S)


def test_it_flushes_first_then_times_out_the_silent_and_spares_whom_it_is_told() -> None:
    parts, flushes = Parts(config=config()), list[str]()
    silent, spared = parts.running("silent"), parts.running("spared")
    parts.clock.advance(TIMEOUT_S + 1)

    def may_time_out(session: ProgressSession) -> bool:
        flushes.append(f"asked about {session.id}")
        return session.id != spared

    result = housekeeper(parts, flushes, may_time_out).cleanup_expired()

    assert flushes[0] == "flush"
    assert result.timed_out == [silent]
    state = parts.store.get(silent).state  # type: ignore[union-attr]
    assert isinstance(state, Failed)
    assert state.error_code == "TIMEOUT"
    assert parts.store.get(spared).status == "in_progress"  # type: ignore[union-attr]


def test_finished_sessions_go_after_retention() -> None:
    parts, flushes = Parts(config=config()), list[str]()
    session_id = parts.running()
    complete = functools.partial(parts.engine.complete, result_summary=None, now=parts.clock.now())
    parts.committer.commit(session_id, complete)
    keeper = housekeeper(parts, flushes)
    assert keeper.cleanup_expired().removed == 0
    parts.clock.advance(RETENTION_S + 1)
    assert keeper.cleanup_expired().removed == 1
    assert parts.store.get(session_id) is None


def test_a_failing_periodic_run_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    parts = Parts(config=config())

    def flush() -> None:
        raise RuntimeError("boom")

    keeper = Housekeeper(
        parts.store, parts.engine, parts.clock, parts.config, parts.committer, flush, None
    )
    with caplog.at_level(logging.ERROR, logger="celery_progress_mcp.tracking.housekeeping"):
        keeper.run_periodically()
    assert "progress cleanup failed" in caplog.text
