"""Where ``install`` finds its configuration.

``ProgressConfig`` comes from the first source that has any: the argument
to ``install``, the app's Celery config (``progress_<field>`` keys, e.g.
``app.conf.progress_store_url``), the environment (``CELERY_PROGRESS_*``),
else the defaults. Two defaults differ for Celery:

* ``store_url``: a store shared by the client and the workers. Without one
  configured, the result backend's database where the app uses ``db+...``,
  else an SQLite file in the user's state directory, named after the app
  (``store.state_dir``: ``$CELERY_PROGRESS_STATE_DIR``, else
  ``$XDG_STATE_HOME/celery-progress-mcp``, else ``~/.local/state/celery-progress-mcp``).
  An SQLite file is for one machine only: workers on other machines cannot
  see it (configure PostgreSQL or MySQL there).
* ``max_concurrent_sessions``: 100,000 rather than 1,000, since every queued
  task has an active (initializing) session.

The integration's own settings (:class:`CelerySettings`) are read from the
app's config only, as ``progress_<name>`` keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..core.config import ENV_PREFIX, ProgressConfig
from ..core.errors import ConfigError
from ..store.state_dir import STATE_DIR_ENV, state_directory

__all__ = [
    "CELERY_MAX_CONCURRENT_SESSIONS",
    "CONF_PREFIX",
    "STATE_DIR_ENV",
    "CelerySettings",
    "default_store_url",
    "resolve_config",
    "resolve_settings",
]

#: Prefix of the progress keys in a Celery app's config.
CONF_PREFIX = "progress_"
#: The default ``max_concurrent_sessions`` under Celery (queued tasks count).
CELERY_MAX_CONCURRENT_SESSIONS = 100_000


@dataclass(frozen=True, slots=True)
class CelerySettings:
    """The integration's own settings (``app.conf.progress_<name>``)."""

    #: ``update_state`` still writes to the result backend, so existing pollers
    #: work: True writes progress states at most once per coalescing window (the
    #: latest always), ``"always"`` writes every call at once as Celery does,
    #: False never writes them.
    update_state_to_backend: bool | str = True
    #: Send the Celery task events that show progress and cancellation in Flower
    #: (:class:`.worker_runtime.TaskProgressEvents`); None follows the worker's ``-E``.
    task_events: bool | None = None
    #: ``auto`` (the broker's fanout where it has one, else polling the store),
    #: ``kombu``, ``poll`` (the store's event log only) or ``local`` (one process).
    bus: str = "auto"
    #: Name of the fanout exchange that carries progress events.
    bus_exchange: str = "celery_progress.events"
    #: How often a subscriber checks the store's log for what the broker did not bring.
    poll_interval_seconds: float = 1.0
    #: Sub-operation weight of a group, chord or chain member whose task sets none.
    member_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.update_state_to_backend not in (True, False, "always"):
            raise ConfigError(
                "progress_update_state_to_backend: expected True, False or 'always', "
                f"got {self.update_state_to_backend!r}"
            )
        if self.bus not in ("auto", "kombu", "poll", "local"):
            raise ConfigError(
                f"progress_bus: expected auto, kombu, poll or local, got {self.bus!r}"
            )
        if not self.poll_interval_seconds > 0:
            raise ConfigError("progress_poll_interval_seconds must be positive")
        if not self.member_weight > 0:
            raise ConfigError("progress_member_weight must be positive")


_SETTING_NAMES = frozenset(field.name for field in fields(CelerySettings))


def _progress_keys(conf: Mapping[str, Any]) -> dict[str, Any]:
    found = {}
    for key in list(conf.keys()):
        if isinstance(key, str) and key.lower().startswith(CONF_PREFIX):
            value = conf.get(key)
            if value is not None:
                found[key.lower()[len(CONF_PREFIX) :]] = value
    return found


def resolve_settings(conf: Mapping[str, Any]) -> CelerySettings:
    values = {name: value for name, value in _progress_keys(conf).items() if name in _SETTING_NAMES}
    try:
        return CelerySettings(**values)
    except TypeError as exc:
        raise ConfigError(f"Celery config: invalid progress setting: {exc}") from exc


def resolve_config(
    config: ProgressConfig | None,
    conf: Mapping[str, Any],
    *,
    app_name: str | None,
    environ: Mapping[str, str] | None = None,
) -> ProgressConfig:
    """The configuration ``install`` uses (see the module's docstring)."""
    env = os.environ if environ is None else environ
    if config is None:
        found = _progress_keys(conf)
        unknown = sorted(set(found) - set(ProgressConfig.model_fields) - _SETTING_NAMES)
        if unknown:
            names = ", ".join(CONF_PREFIX + name for name in unknown)
            raise ConfigError(f"Celery config: unknown progress setting(s): {names}")
        values = {k: v for k, v in found.items() if k in ProgressConfig.model_fields}
        if values:
            config = ProgressConfig.from_mapping(values, source="Celery config")
        elif any(key.startswith(ENV_PREFIX) for key in env):
            config = ProgressConfig.from_env(env)
        else:
            config = ProgressConfig()
    changes: dict[str, Any] = {}
    if "store_url" not in config.model_fields_set:
        changes["store_url"] = default_store_url(conf, app_name, env)
    if "max_concurrent_sessions" not in config.model_fields_set:
        changes["max_concurrent_sessions"] = CELERY_MAX_CONCURRENT_SESSIONS
    if not changes:
        return config
    merged = {name: getattr(config, name) for name in config.model_fields_set}
    return ProgressConfig(**{**merged, **changes})


def default_store_url(
    conf: Mapping[str, Any], app_name: str | None, environ: Mapping[str, str] | None = None
) -> str:
    """The result backend's database for ``db+...``, else a per-app SQLite file."""
    backend = conf.get("result_backend") or ""
    if isinstance(backend, str) and backend.startswith("db+"):
        return backend[len("db+") :]
    base = state_directory(environ)
    base.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", app_name or "") or "celery"
    if name == "__main__":
        name = "celery"
    return f"sqlite:///{base.resolve() / name}.sqlite3"
