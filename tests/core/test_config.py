"""ProgressConfig: the seed's defaults, YAML (both shapes), the environment, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from celery_progress_mcp import ConfigError, InvalidProgress, ProgressConfig, ProgressGranularity
from celery_progress_mcp.core.config import ENV_PREFIX, OTHER_ENV_VARIABLES, TEST_ENV_PREFIX


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


# -- strict types, unknown names, the store URL (issue #15) ---------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("max_concurrent_sessions: true", "max_concurrent_sessions"),
        ('max_concurrent_sessions: "5"', "max_concurrent_sessions"),
        ("update_interval_ms: 2.5", "update_interval_ms"),
        ('enabled: "yes"', "enabled"),
        ("enabled: 1", "enabled"),
        ('session_timeout_seconds: "90"', "session_timeout_seconds"),
        ("store_url: 5", "store_url"),
    ],
)
def test_a_yaml_value_of_the_wrong_type_is_refused_not_coerced(
    tmp_path: Path, body: str, field: str
) -> None:
    path = write(tmp_path, f"progress:\n  {body}\n")
    with pytest.raises(ConfigError, match=field):
        ProgressConfig.from_yaml(path)


def test_yaml_numbers_of_the_right_kind_are_taken() -> None:
    config = ProgressConfig.from_mapping({"session_timeout_seconds": 90, "enabled": False})
    assert config.session_timeout_seconds == 90.0
    assert config.enabled is False


def test_an_unknown_yaml_key_is_refused_naming_the_close_match(tmp_path: Path) -> None:
    path = write(tmp_path, "progress:\n  max_concurent_sessions: 5\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown progress setting\(s\): max_concurent_sessions "
        r"\(did you mean max_concurrent_sessions\?\)",
    ):
        ProgressConfig.from_yaml(path)


def test_an_unknown_environment_variable_is_refused_naming_the_close_match() -> None:
    with pytest.raises(
        ConfigError,
        match=r"CELERY_PROGRESS_UPDATE_INTERVL_MS \(did you mean "
        r"CELERY_PROGRESS_UPDATE_INTERVAL_MS\?\)",
    ):
        ProgressConfig.from_env({"CELERY_PROGRESS_UPDATE_INTERVL_MS": "250"})
    with pytest.raises(ConfigError, match=r"unknown progress setting\(s\): CELERY_PROGRESS_BOGUS"):
        ProgressConfig.from_env({"CELERY_PROGRESS_BOGUS": "1"})


def test_variables_read_elsewhere_are_left_alone() -> None:
    env = dict.fromkeys(OTHER_ENV_VARIABLES, "x")
    env["CELERY_PROGRESS_TEST_POSTGRES_URL"] = "postgresql://"
    env["OTHER_PROGRAM_SETTING"] = "1"
    assert ProgressConfig.from_env(env) == ProgressConfig()


def test_every_celery_progress_variable_the_package_reads_is_known() -> None:
    """A variable read elsewhere in the package is listed, or from_env would refuse it."""
    package = Path(__file__).resolve().parents[2] / "celery_progress_mcp"
    found = set()
    for path in package.rglob("*.py"):
        found |= set(re.findall(r"\b(CELERY_PROGRESS_[A-Z0-9_]*[A-Z0-9])\b", path.read_text()))
    settings = {ENV_PREFIX + name.upper() for name in ProgressConfig.model_fields}
    unknown = sorted(found - settings - OTHER_ENV_VARIABLES)
    assert [name for name in unknown if not name.startswith(TEST_ENV_PREFIX)] == []


def test_environment_values_are_parsed_and_checked() -> None:
    config = ProgressConfig.from_env({"CELERY_PROGRESS_MAX_STEP_CHARS": "64"})
    assert config.max_step_chars == 64
    with pytest.raises(ConfigError, match="CELERY_PROGRESS_ENABLED"):
        ProgressConfig.from_env({"CELERY_PROGRESS_ENABLED": "maybe"})


@pytest.mark.parametrize("url", ["foo://bar", "http://example.com", "redis://localhost", ""])
def test_a_store_url_of_an_unknown_scheme_is_refused_when_the_config_is_built(url: str) -> None:
    with pytest.raises(ConfigError, match=r"CELERY_PROGRESS_STORE_URL: .*unknown store scheme"):
        ProgressConfig.from_env({"CELERY_PROGRESS_STORE_URL": url})
    with pytest.raises(ConfigError, match=r"supported: memory://, sqlite://, postgresql://"):
        ProgressConfig.from_mapping({"store_url": url})
    with pytest.raises(ValueError, match="unknown store scheme"):
        ProgressConfig(store_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "memory",
        "sqlite:///x.db",
        "sqlite+pysqlite:///x.db",
        "postgresql://h/db",
        "postgres://h/db",
        "postgresql+psycopg://h/db",
        "mysql+pymysql://h/db",
        "mariadb://h/db",
    ],
)
def test_the_supported_store_schemes_are_taken(url: str) -> None:
    assert ProgressConfig(store_url=url).store_url == url


@pytest.mark.parametrize(
    ("field", "low"),
    [
        ("max_id_chars", 35),
        ("max_id_chars", 256),
        ("max_name_chars", 15),
        ("max_step_chars", 15),
        ("max_error_chars", 63),
        ("max_result_summary_chars", 63),
        ("max_reason_chars", 63),
    ],
)
def test_a_bound_out_of_its_range_is_refused(field: str, low: int) -> None:
    with pytest.raises(ConfigError, match=field):
        ProgressConfig.from_mapping({field: low})
