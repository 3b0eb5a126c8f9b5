"""install(): idempotent, configurable, and enough on its own for eager tasks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from celery_progress_mcp import (
    CeleryProgressTracker,
    Completed,
    ConfigError,
    Failed,
    ProgressConfig,
    ProgressTracker,
    install,
    progress_task,
)
from celery_progress_mcp.celery import uninstall
from celery_progress_mcp.celery.filesystem_transport import TRANSPORT


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Celery]:
    app = Celery("cpminstall", broker="memory://", backend="cache+memory://")
    app.conf.progress_store_url = f"sqlite:///{tmp_path / 'progress.db'}"
    app.conf.progress_bus = "local"
    yield app
    uninstall(app)


def test_install_is_idempotent(app: Celery) -> None:
    tracker = install(app)
    assert isinstance(tracker, CeleryProgressTracker)
    assert install(app) is tracker
    assert tracker.config.store_url == app.conf.progress_store_url


def test_the_celery_tracker_offers_the_whole_tracker_api(app: Celery) -> None:
    tracker = install(app)
    plain = ProgressTracker(ProgressConfig(store_url="memory://"))
    try:
        offered = {name for name in vars(plain) if not name.startswith("_")}
        offered |= {name for name in dir(ProgressTracker) if not name.startswith("_")}
        # after_fork is called by tracking.forks in a forked child, not by users: the
        # composed tracker registers itself.
        offered.discard("after_fork")
        assert offered - set(dir(tracker)) == set()
        assert tracker.get_session.__doc__ == ProgressTracker.get_session.__doc__
    finally:
        plain.close()


def test_installing_again_with_another_config_is_refused(app: Celery) -> None:
    install(app)
    with pytest.raises(ConfigError, match="already"):
        install(app, ProgressConfig(update_interval_ms=1))


def test_eager_tasks_are_tracked_from_start_to_end(app: Celery) -> None:
    tracker = install(app)

    @progress_task(app, name="cpminstall.double")
    def double(self: object, value: int) -> int:
        self.progress.update(50, step="doubling")  # type: ignore[attr-defined]
        return value * 2

    @progress_task(app, name="cpminstall.broken")
    def broken(self: object) -> None:
        raise LookupError("no such row")

    result = double.apply((21,))
    assert result.get() == 42
    session = tracker.get_session(result.id)
    assert isinstance(session.state, Completed)
    assert session.state.result_summary == "42"
    failed = tracker.get_session(broken.apply().id)
    assert isinstance(failed.state, Failed)
    assert (failed.state.error_code, failed.state.error_message) == ("LookupError", "no such row")


def test_a_task_called_directly_reports_nowhere(app: Celery) -> None:
    install(app)

    @progress_task(app, name="cpminstall.direct")
    def direct(self: object) -> str:
        self.progress.update(10)  # type: ignore[attr-defined]
        return "called"

    assert direct() == "called"


def test_untracked_tasks_get_no_session(app: Celery) -> None:
    tracker = install(app)

    @app.task(name="cpminstall.plain")  # type: ignore[untyped-decorator]
    def plain() -> int:
        return 1

    result = plain.apply()
    assert tracker.list_sessions() == []
    assert result.get() == 1


def test_the_filesystem_broker_gets_whole_messages(tmp_path: Path) -> None:
    app = Celery("cpmfs", broker="filesystem://")
    app.conf.progress_store_url = "memory://"
    try:
        install(app)
        assert app.conf.broker_transport == TRANSPORT
    finally:
        uninstall(app)
