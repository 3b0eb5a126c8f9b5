"""The app's settings, the Django way: one ``CELERY_PROGRESS`` dict.

::

    CELERY_PROGRESS = {
        "update_interval_ms": 250,            # any ProgressConfig field
        "bus": "kombu",                       # any of the Celery integration's settings
        "permission": "myapp.view_progress",  # who sees the dashboard (default: staff)
    }

Keys are case-insensitive (``"STORE_URL"`` works too), and each may also be
given as a ``CELERY_PROGRESS_<KEY>`` setting (what ``config_from_object(...,
namespace="CELERY")`` hands Celery as ``progress_<key>``); the dict wins.

* :class:`~celery_progress_mcp.ProgressConfig` fields configure the tracker.
  Without a ``store_url`` the store is the project's database
  (``DATABASES["default"]``, or the alias ``database`` names), in its own
  tables (``progress_*``), reached with the same connection settings
  (:func:`store_url_from_database`).
* The Celery integration's settings (``bus``, ``update_state_to_backend``,
  ... see :class:`~celery_progress_mcp.celery.settings.CelerySettings`) go to
  the Celery app's config, where ``install`` reads them.
* This app's own: ``celery_app`` (the app to track, as ``"module:attribute"``;
  default: Celery's current app, which ``proj/__init__.py`` sets by importing
  it as Celery's Django guide says), ``permission`` (a permission a user must
  have to see the dashboard and its API; default: staff users),
  ``title`` (the dashboard's), ``live_interval_s`` and ``max_streams`` (the
  live stream's, as ``create_app`` takes them), ``database`` (the alias the
  default store follows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from django.conf import settings
from sqlalchemy.engine import URL

from ..celery.settings import CONF_PREFIX, CelerySettings
from ..core.config import ProgressConfig
from ..core.errors import ConfigError
from ..monitor.live import DEFAULT_INTERVAL_S, DEFAULT_MAX_STREAMS

__all__ = [
    "SETTING",
    "AppSettings",
    "app_settings",
    "dashboard_permission",
    "database_url",
    "store_url_from_database",
]

#: The Django setting this app reads (a dict), and the prefix of the single settings.
SETTING = "CELERY_PROGRESS"
#: The database alias the default store follows.
DEFAULT_DATABASE = "default"
#: Django's database engines, and the SQLAlchemy driver the store reaches each with.
_DRIVERS = {
    "django.db.backends.postgresql": "postgresql+psycopg",
    "django.db.backends.mysql": "mysql+pymysql",
}
_SQLITE = "django.db.backends.sqlite3"

_CONFIG_KEYS = frozenset(ProgressConfig.model_fields)
_CELERY_KEYS = frozenset(field.name for field in fields(CelerySettings))


@dataclass(frozen=True, slots=True)
class AppSettings:
    """What ``CELERY_PROGRESS`` says, checked."""

    #: The tracker's configuration, its store resolved.
    config: ProgressConfig
    #: The Celery integration's settings, to hand the app as ``progress_<name>``.
    celery: Mapping[str, Any]
    #: ``"module:attribute"`` of the Celery app, or None for Celery's current app.
    celery_app: str | None = None
    title: str = "Celery progress"
    live_interval_s: float = DEFAULT_INTERVAL_S
    max_streams: int = DEFAULT_MAX_STREAMS
    #: The database alias the default store follows (and whose ``migrate`` migrates it).
    database: str = DEFAULT_DATABASE


_APP_KEYS = frozenset(
    {"celery_app", "permission", "title", "live_interval_s", "max_streams", "database"}
)


def _given() -> dict[str, Any]:
    """The keys set, lower-cased: the dict's, then single ``CELERY_PROGRESS_<KEY>`` settings."""
    raw = getattr(settings, SETTING, None) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"settings.{SETTING} must be a dict, got {type(raw).__name__}")
    given = {str(key).lower(): value for key, value in raw.items()}
    prefix = SETTING + "_"
    for name in dir(settings):
        if name.startswith(prefix) and name.isupper():
            given.setdefault(name[len(prefix) :].lower(), getattr(settings, name))
    unknown = sorted(set(given) - _CONFIG_KEYS - _CELERY_KEYS - _APP_KEYS)
    if unknown:
        raise ConfigError(f"settings.{SETTING}: unknown key(s): {', '.join(unknown)}")
    return given


def app_settings() -> AppSettings:
    """``CELERY_PROGRESS`` (and ``CELERY_PROGRESS_*``) as checked settings."""
    given = _given()
    values = {key: value for key, value in given.items() if key in _CONFIG_KEYS}
    if values.get("store_url") is None:
        values["store_url"] = store_url_from_database(given.get("database", DEFAULT_DATABASE))
    config = ProgressConfig.from_mapping(values, source=f"settings.{SETTING}")
    # The permission is read on each request (dashboard_permission); checked here once.
    dashboard_permission()
    app_values = {key: given[key] for key in _APP_KEYS - {"permission"} if key in given}
    try:
        return AppSettings(
            config=config,
            celery={CONF_PREFIX + k: value for k, value in given.items() if k in _CELERY_KEYS},
            **app_values,
        )
    except TypeError as exc:  # pragma: no cover - the keys are checked above
        raise ConfigError(f"settings.{SETTING}: {exc}") from exc


def dashboard_permission() -> str | None:
    """The permission that opens the dashboard (None: staff users), read on every request.

    Read afresh, unlike the tracker's configuration, so that a change of
    settings (``override_settings`` in a test) takes effect at once.
    """
    raw = getattr(settings, SETTING, None) or {}
    found = [value for key, value in raw.items() if str(key).lower() == "permission"]
    permission = found[0] if found else getattr(settings, f"{SETTING}_PERMISSION", None)
    if permission is not None and not isinstance(permission, str):
        raise ConfigError(f"settings.{SETTING}: permission must be a string like 'app.codename'")
    return permission


def store_url_from_database(alias: str = DEFAULT_DATABASE) -> str:
    """The store's URL for the Django database ``alias``: same server, same credentials.

    SQLite, PostgreSQL (through psycopg 3) and MySQL/MariaDB (through PyMySQL)
    are supported; another engine, or an SQLite database in memory (which no
    other process could see), is a :class:`ConfigError` asking for a
    ``store_url``.
    """
    databases: Mapping[str, Mapping[str, Any]] = settings.DATABASES
    if alias not in databases:
        raise ConfigError(f"settings.{SETTING}: no database {alias!r} in settings.DATABASES")
    return database_url(databases[alias])


def database_url(database: Mapping[str, Any]) -> str:
    """A SQLAlchemy URL for one ``settings.DATABASES`` entry (:func:`store_url_from_database`)."""
    engine = str(database.get("ENGINE", ""))
    name = database.get("NAME")
    if engine == _SQLITE:
        if not name or str(name) == ":memory:" or str(name).startswith("file:"):
            raise ConfigError(
                f"settings.{SETTING}: an SQLite database in memory is not shared with the "
                "workers; set store_url"
            )
        return f"sqlite:///{Path(name).resolve()}"
    driver = _DRIVERS.get(engine)
    if driver is None:
        raise ConfigError(
            f"settings.{SETTING}: no store for the database engine {engine!r} "
            "(SQLite, PostgreSQL, MySQL are); set store_url"
        )
    options: Mapping[str, Any] = database.get("OPTIONS") or {}
    host = str(database.get("HOST") or "") or None
    query: dict[str, str] = {}
    if host is not None and host.startswith("/"):
        query["host"] = host  # a Unix socket's directory (PostgreSQL)
        host = None
    if driver.startswith("postgresql"):
        for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "options"):
            if key in options:
                query[key] = str(options[key])
    else:
        query["charset"] = str(options.get("charset", "utf8mb4"))
        if "unix_socket" in options:
            query["unix_socket"] = str(options["unix_socket"])
    port = database.get("PORT")
    url = URL.create(
        driver,
        username=database.get("USER") or None,
        password=database.get("PASSWORD") or None,
        host=host,
        port=int(port) if port not in (None, "") else None,
        database=str(name) if name else None,
        query=query,
    )
    return url.render_as_string(hide_password=False)
