"""``ProgressConfig``: the seed's settings plus what the engine needs.

Sources, each validated the same way: code (``ProgressConfig(...)``), YAML
(``from_yaml``), the environment (``from_env``, ``CELERY_PROGRESS_*``) and a
plain mapping such as Celery's config (``from_mapping``). A bad value raises
:class:`ConfigError` naming the field and where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

__all__ = ["ENV_PREFIX", "ProgressConfig", "ProgressGranularity"]

#: Prefix of the environment variables read by ``ProgressConfig.from_env``.
ENV_PREFIX = "CELERY_PROGRESS_"


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
    model_config = ConfigDict(frozen=True, extra="forbid")

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

    @field_validator("granularity_level", mode="before")
    @classmethod
    def _parse_granularity(cls, value: object) -> ProgressGranularity:
        return ProgressGranularity.parse(value)

    @property
    def update_interval_s(self) -> float:
        return self.update_interval_ms / 1000.0

    # -- sources ---------------------------------------------------------

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "mapping") -> Self:
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"{source}: unknown progress setting(s): {', '.join(unknown)}")
        try:
            return cls(**values)
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
        try:
            return cls(**values)
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


def _describe(exc: ValidationError, source: str, *, prefix: str | None = None) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        name = prefix + field.upper() if prefix else field
        problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
    return f"{source}: invalid progress config: " + "; ".join(problems)
