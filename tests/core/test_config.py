"""ProgressConfig: the seed's defaults, YAML (both shapes), the environment, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from celery_progress_mcp import ConfigError, InvalidProgress, ProgressConfig, ProgressGranularity


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_seeds() -> None:
    config = ProgressConfig()
    assert config.enabled is True
    assert config.max_concurrent_sessions == 1000
    assert config.update_interval_ms == 500
    assert config.session_timeout_seconds == 3600
    assert config.enable_detailed_events is True
    assert config.cleanup_interval_seconds == 300
    assert config.granularity_level is ProgressGranularity.DETAILED


def test_engine_settings_exist() -> None:
    config = ProgressConfig()
    assert config.max_history_snapshots >= 2
    assert config.max_metadata_bytes > 0
    assert config.finished_retention_seconds >= 0
    assert config.store_url == "memory://"


def test_from_yaml_reads_a_top_level_progress_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "progress:\n  update_interval_ms: 100\n  granularity_level: verbose\n"
        "  max_history_snapshots: 20\n",
    )
    config = ProgressConfig.from_yaml(path)
    assert config.update_interval_ms == 100
    assert config.granularity_level is ProgressGranularity.VERBOSE
    assert config.max_history_snapshots == 20


def test_from_yaml_reads_the_seeds_nested_shape(tmp_path: Path) -> None:
    # The seed's "advanced configuration" example, as written in its docs.
    path = write(
        tmp_path,
        """
mcp_2025_security:
  progress:
    enabled: true
    max_concurrent_sessions: 5000
    update_interval_ms: 100  # Fast updates
    session_timeout_seconds: 7200  # 2 hours
    enable_detailed_events: true
    cleanup_interval_seconds: 300  # 5 minutes
    granularity_level: "Verbose"  # Most detailed tracking
""",
    )
    config = ProgressConfig.from_yaml(str(path))
    assert config.max_concurrent_sessions == 5000
    assert config.update_interval_ms == 100
    assert config.session_timeout_seconds == 7200
    assert config.cleanup_interval_seconds == 300
    assert config.granularity_level is ProgressGranularity.VERBOSE


def test_from_yaml_without_a_progress_section_gives_defaults(tmp_path: Path) -> None:
    assert ProgressConfig.from_yaml(write(tmp_path, "other: 1\n")) == ProgressConfig()
    assert ProgressConfig.from_yaml(write(tmp_path, "")) == ProgressConfig()


@pytest.mark.parametrize(
    "text", ["Basic", "basic", "BASIC", " standard ", "DeTaIlEd", "verbose", "VERBOSE"]
)
def test_granularity_is_parsed_case_insensitively(text: str) -> None:
    config = ProgressConfig.from_mapping({"granularity_level": text})
    assert config.granularity_level is ProgressGranularity.parse(text.strip().capitalize())


def test_from_env_reads_prefixed_variables() -> None:
    config = ProgressConfig.from_env(
        {
            "CELERY_PROGRESS_ENABLED": "false",
            "CELERY_PROGRESS_UPDATE_INTERVAL_MS": "250",
            "CELERY_PROGRESS_GRANULARITY_LEVEL": "standard",
            "CELERY_PROGRESS_SESSION_TIMEOUT_SECONDS": "90.5",
            "UNRELATED": "x",
        }
    )
    assert config.enabled is False
    assert config.update_interval_ms == 250
    assert config.granularity_level is ProgressGranularity.STANDARD
    assert config.session_timeout_seconds == 90.5
    assert config.max_concurrent_sessions == 1000


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_PROGRESS_MAX_CONCURRENT_SESSIONS", "7")
    assert ProgressConfig.from_env().max_concurrent_sessions == 7


def test_from_env_names_the_variable_of_a_bad_value() -> None:
    with pytest.raises(ConfigError) as raised:
        ProgressConfig.from_env({"CELERY_PROGRESS_MAX_CONCURRENT_SESSIONS": "many"})
    assert "CELERY_PROGRESS_MAX_CONCURRENT_SESSIONS" in str(raised.value)
    assert "environment" in str(raised.value)


def test_from_env_names_a_bad_granularity() -> None:
    with pytest.raises(ConfigError, match=r"CELERY_PROGRESS_GRANULARITY_LEVEL.*loud"):
        ProgressConfig.from_env({"CELERY_PROGRESS_GRANULARITY_LEVEL": "loud"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("max_concurrent_sessions: 0", "max_concurrent_sessions"),
        ("update_interval_ms: -5", "update_interval_ms"),
        ("granularity_level: Chatty", "granularity_level"),
        ("session_timeout_seconds: soon", "session_timeout_seconds"),
        ("max_history_snapshots: 1", "max_history_snapshots"),
        ("eta_smoothing: 1.5", "eta_smoothing"),
        ("colour: red", "colour"),
    ],
)
def test_a_bad_yaml_value_names_the_field_and_the_file(
    tmp_path: Path, body: str, field: str
) -> None:
    path = write(tmp_path, f"progress:\n  {body}\n")
    with pytest.raises(ConfigError) as raised:
        ProgressConfig.from_yaml(path)
    assert field in str(raised.value)
    assert str(path) in str(raised.value)
    assert isinstance(raised.value, InvalidProgress)
    assert isinstance(raised.value, ValueError)


def test_a_bad_value_in_the_seeds_shape_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "mcp_2025_security:\n  progress:\n    update_interval_ms: fast\n")
    with pytest.raises(ConfigError, match="update_interval_ms") as raised:
        ProgressConfig.from_yaml(path)
    assert str(path) in str(raised.value)


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "progress:\n  enabled: [true\n")
    with pytest.raises(ConfigError, match="malformed YAML") as raised:
        ProgressConfig.from_yaml(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "progress: 5\n", "progress: [1, 2]\n"])
def test_a_config_of_the_wrong_shape_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="mapping") as raised:
        ProgressConfig.from_yaml(path)
    assert str(path) in str(raised.value)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="cannot read") as raised:
        ProgressConfig.from_yaml(path)
    assert str(path) in str(raised.value)


def test_from_mapping_names_unknown_settings() -> None:
    with pytest.raises(ConfigError, match="colour"):
        ProgressConfig.from_mapping({"colour": "red"}, source="celery config")


def test_config_is_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        ProgressConfig().enabled = False  # type: ignore[misc]
