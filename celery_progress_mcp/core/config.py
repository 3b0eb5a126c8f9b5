"""``ProgressConfig``: the seed's settings plus what the engine needs.

Sources, each validated the same way: code (``ProgressConfig(...)``), YAML
(``from_yaml``), the environment (``from_env``, ``CELERY_PROGRESS_*``) and a
plain mapping such as Celery's config (``from_mapping``). A bad value raises
:class:`ConfigError` naming the field and where it came from.

Types are strict (pydantic's strict mode): YAML ``max_concurrent_sessions:
true`` or ``"5"`` is refused, not coerced. Only the environment, where every
value is text, is parsed (``"250"`` is 250, ``"false"`` is False). An unknown
setting or ``CELERY_PROGRESS_*`` variable is refused, naming the close match.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "OTHER_ENV_VARIABLES",
    "STORE_SCHEMES",
    "TEST_ENV_PREFIX",
    "ProgressConfig",
    "ProgressGranularity",
]

#: Prefix of the environment variables read by ``ProgressConfig.from_env``.
ENV_PREFIX = "CELERY_PROGRESS_"
#: ``CELERY_PROGRESS_*`` variables that are not settings but are read
#: elsewhere (the commands' tokens, the Celery integration's state
#: directory, the test suite's switch): ``from_env`` leaves them alone.
OTHER_ENV_VARIABLES: frozenset[str] = frozenset(
    {
        "CELERY_PROGRESS_DASHBOARD_BASIC_AUTH",
        "CELERY_PROGRESS_DASHBOARD_TOKEN",
        "CELERY_PROGRESS_MCP_TOKEN",
        "CELERY_PROGRESS_REQUIRE_SERVERS",
        "CELERY_PROGRESS_STATE_DIR",
    }
)
#: The test suite's server URLs (``CELERY_PROGRESS_TEST_POSTGRES_URL``...):
#: ``from_env`` leaves variables with this prefix alone.
TEST_ENV_PREFIX = "CELERY_PROGRESS_TEST_"
#: The schemes ``store_url`` may have (a SQL one may name its driver:
#: ``postgresql+psycopg://``).
STORE_SCHEMES: tuple[str, ...] = ("memory", "sqlite", "postgresql", "postgres", "mysql", "mariadb")


class ProgressGranularity(StrEnum):
    """How much is recorded, each level adding to the one before.

    * ``BASIC``: session created, completed, failed, cancelled (and expired).
    * ``STANDARD``: adds percentage updates, pause/resume and state changes.
    * ``DETAILED``: adds the step, step numbers and ETA to events and history.
    * ``VERBOSE``: adds sub-operation events, and sub-operations in history.
    """

    BASIC = "Basic"
    STANDARD = "Standard"
    DETAILED = "Detailed"
    VERBOSE = "Verbose"

    @classmethod
    def parse(cls, value: object) -> ProgressGranularity:
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        for member in cls:
            if text in (member.value.lower(), member.name.lower()):
                return member
        names = ", ".join(member.value for member in cls)
        raise ValueError(f"unknown granularity {value!r}; expected one of {names}")

    @property
    def rank(self) -> int:
        return list(ProgressGranularity).index(self)


class ProgressConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    #: Off: every tracker call is a cheap no-op, so tracking can be switched
    #: off without touching task code.
    enabled: bool = True
    #: Active sessions (initializing, in progress, paused) allowed at once;
    #: finished sessions never count.
    max_concurrent_sessions: Annotated[int, Field(ge=1)] = 1000
    #: Coalescing window: at most one store write per session per window;
    #: the latest value is always written. 0 writes every update.
    update_interval_ms: Annotated[int, Field(ge=0)] = 500
    #: An active session silent for longer fails with error_code "TIMEOUT".
    session_timeout_seconds: Annotated[float, Field(gt=0)] = 3600
    #: False keeps only lifecycle events (created/paused/resumed/ended).
    enable_detailed_events: bool = True
    #: Period of the background cleaner.
    cleanup_interval_seconds: Annotated[float, Field(gt=0)] = 300
    #: Celery: a started task whose worker has not sent a heartbeat for this
    #: long is failed ("WORKER_LOST"); workers heartbeat several times per period.
    heartbeat_timeout_seconds: Annotated[float, Field(gt=0)] = 60
    granularity_level: ProgressGranularity = ProgressGranularity.DETAILED
    #: History bound; thinning keeps the first, the latest, and an evenly
    #: spread subset in between.
    max_history_snapshots: Annotated[int, Field(ge=2)] = 100
    #: Upper bound of a session's metadata (and of one update's), as JSON.
    max_metadata_bytes: Annotated[int, Field(ge=64)] = 64 * 1024
    #: How long finished sessions are kept before cleanup removes them.
    finished_retention_seconds: Annotated[float, Field(ge=0)] = 24 * 3600
    #: ETA smoothing factor in (0, 1]; 0 means the whole-run average rate.
    eta_smoothing: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    #: Events buffered per subscriber; beyond it the oldest are dropped and counted.
    subscriber_buffer_size: Annotated[int, Field(ge=1)] = 10_000
    #: Where sessions live: ``memory://``, ``sqlite:///path``, ``postgresql://...``.
    store_url: str = "memory://"

    # Input bounds, in characters. Identities and what a caller words itself
    # are refused past their bound (InvalidProgress naming the field and the
    # limit); what a task's end records (errors, results, reasons) is
    # truncated with a marker instead, so ending a session never fails on it.

    #: Longest session, operation, parent and sub-operation id (the SQL
    #: store's id columns hold 255). Longer: refused.
    max_id_chars: Annotated[int, Field(ge=36, le=255)] = 255
    #: Longest sub-operation name. Longer: refused.
    max_name_chars: Annotated[int, Field(ge=16)] = 1024
    #: Longest step text (``InProgress.current_step``). Longer: refused.
    max_step_chars: Annotated[int, Field(ge=16)] = 1024
    #: Longest error message and error code (a failed session's, a failed
    #: sub-operation's). Longer: truncated with a marker.
    max_error_chars: Annotated[int, Field(ge=64)] = 8192
    #: Longest result summary of a completed session. Longer: truncated with a marker.
    max_result_summary_chars: Annotated[int, Field(ge=64)] = 8192
    #: Longest pause or cancel reason. Longer: truncated with a marker.
    max_reason_chars: Annotated[int, Field(ge=64)] = 1024

    @field_validator("granularity_level", mode="before")
    @classmethod
    def _parse_granularity(cls, value: object) -> ProgressGranularity:
        return ProgressGranularity.parse(value)

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0].strip().lower()
        if scheme not in STORE_SCHEMES:
            supported = ", ".join(f"{name}://" for name in STORE_SCHEMES)
            raise ValueError(f"unknown store scheme {scheme!r}; supported: {supported}")
        return value

    @property
    def update_interval_s(self) -> float:
        return self.update_interval_ms / 1000.0

    # -- sources ---------------------------------------------------------

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "mapping") -> Self:
        unknown = [name for name in values if name not in cls.model_fields]
        if unknown:
            raise ConfigError(f"{source}: {_unknown(unknown, cls.model_fields)}")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source)) from exc

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Self:
        """Read a top-level ``progress:`` section, or the seed's nested
        ``mcp_2025_security: progress:``."""
        source = os.fspath(path)
        try:
            document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: malformed YAML: {exc}") from exc
        section = _progress_section(document, source)
        return cls.from_mapping(section, source=f"{source}: progress")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, prefix: str = ENV_PREFIX
    ) -> Self:
        """Read ``CELERY_PROGRESS_<FIELD>`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            key = prefix + name.upper()
            if key in env:
                values[name] = env[key]
        settings = {prefix + name.upper() for name in cls.model_fields}
        unknown = [
            key
            for key in env
            if key.startswith(prefix)
            and key not in settings
            and key not in OTHER_ENV_VARIABLES
            and not key.startswith(TEST_ENV_PREFIX)
        ]
        if unknown:
            raise ConfigError(f"environment: {_unknown(unknown, cls.model_fields, prefix)}")
        try:
            # Text is all the environment has: parsed, not strict.
            return cls.model_validate(values, strict=False)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, "environment", prefix=prefix)) from exc


def _progress_section(document: object, source: str) -> Mapping[str, Any]:
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    section: object = document.get("progress")
    if section is None and isinstance(document.get("mcp_2025_security"), Mapping):
        section = document["mcp_2025_security"].get("progress")
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: the progress section must be a mapping")
    return section


def _unknown(names: Collection[object], known: Collection[str], prefix: str = "") -> str:
    """Unknown setting names, each with its close match where there is one
    (``prefix``: of environment variables, compared without it)."""
    problems = []
    for name in sorted(map(str, names)):
        bare = name[len(prefix) :].lower() if prefix else name
        close = difflib.get_close_matches(bare, list(known), n=1)
        if close:
            match = prefix + close[0].upper() if prefix else close[0]
            name += f" (did you mean {match}?)"
        problems.append(name)
    return "unknown progress setting(s): " + ", ".join(problems)


def _describe(exc: ValidationError, source: str, *, prefix: str | None = None) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        name = prefix + field.upper() if prefix else field
        problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
    return f"{source}: invalid progress config: " + "; ".join(problems)
