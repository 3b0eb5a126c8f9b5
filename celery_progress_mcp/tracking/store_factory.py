"""Choosing a store from ``ProgressConfig.store_url``."""

from __future__ import annotations

from ..core.errors import ConfigError
from ..store.base import Store
from ..store.memory import MemoryStore

__all__ = ["store_from_url"]


def store_from_url(url: str) -> Store:
    """``memory://`` for an in-process store; SQLAlchemy URLs for the SQL store."""
    if url in ("memory://", "memory:", "memory"):
        return MemoryStore()
    try:
        from ..store.sql import SqlStore
    except ImportError as exc:
        raise ConfigError(f"store_url {url!r}: the SQL store is not available ({exc})") from exc
    return SqlStore(url)
