"""Where install() finds its configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from celery_progress_mcp import ConfigError, ProgressConfig
from celery_progress_mcp.celery.settings import (
    CELERY_MAX_CONCURRENT_SESSIONS,
    CelerySettings,
    resolve_config,
    resolve_settings,
)


def _resolve(
    conf: dict[str, object],
    tmp_path: Path,
    config: ProgressConfig | None = None,
    environ: dict[str, str] | None = None,
) -> ProgressConfig:
    env = {"CELERY_PROGRESS_STATE_DIR": str(tmp_path), **(environ or {})}
    return resolve_config(config, conf, app_name="proj", environ=env)


def test_the_argument_wins(tmp_path: Path) -> None:
    given = ProgressConfig(update_interval_ms=7, store_url="memory://")
    config = _resolve({"progress_update_interval_ms": 9}, tmp_path, given)
    assert config.update_interval_ms == 7
    assert config.store_url == "memory://"


def test_app_config_comes_before_the_environment(tmp_path: Path) -> None:
    conf = {"progress_update_interval_ms": 9, "progress_store_url": "memory://"}
    config = _resolve(conf, tmp_path, environ={"CELERY_PROGRESS_UPDATE_INTERVAL_MS": "3"})
    assert config.update_interval_ms == 9


def test_the_environment_when_the_app_has_no_progress_keys(tmp_path: Path) -> None:
    config = _resolve({}, tmp_path, environ={"CELERY_PROGRESS_UPDATE_INTERVAL_MS": "3"})
    assert config.update_interval_ms == 3


def test_defaults_give_a_per_app_sqlite_file_and_room_for_queued_tasks(tmp_path: Path) -> None:
    config = _resolve({}, tmp_path)
    assert config.store_url == f"sqlite:///{tmp_path.resolve() / 'proj.sqlite3'}"
    assert config.max_concurrent_sessions == CELERY_MAX_CONCURRENT_SESSIONS
    assert config.update_interval_ms == 500


def test_a_db_result_backend_hosts_the_store(tmp_path: Path) -> None:
    config = _resolve({"result_backend": "db+postgresql://u@h/db"}, tmp_path)
    assert config.store_url == "postgresql://u@h/db"


def test_an_explicit_capacity_is_kept(tmp_path: Path) -> None:
    config = _resolve({"progress_max_concurrent_sessions": 10}, tmp_path)
    assert config.max_concurrent_sessions == 10


def test_unknown_progress_keys_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="progress_update_intervall_ms"):
        _resolve({"progress_update_intervall_ms": 5}, tmp_path)


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="update_interval_ms"):
        _resolve({"progress_update_interval_ms": -1}, tmp_path)


def test_integration_settings_come_from_the_app_config() -> None:
    settings = resolve_settings({"progress_bus": "poll", "progress_update_state_to_backend": False})
    assert settings == CelerySettings(bus="poll", update_state_to_backend=False)
    with pytest.raises(ConfigError, match="progress_bus"):
        resolve_settings({"progress_bus": "carrier-pigeon"})
