"""The durable store: SQLAlchemy Core on SQLite, PostgreSQL or MySQL/MariaDB."""

from .connect import normalize_url
from .migrate import SCHEMA_REVISION, upgrade
from .store import SqlStore

__all__ = ["SCHEMA_REVISION", "SqlStore", "normalize_url", "upgrade"]
