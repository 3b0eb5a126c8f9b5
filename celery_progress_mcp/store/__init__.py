"""Stores: where sessions and the event log live."""

from .base import SessionQuery, Store
from .memory import MemoryStore

__all__ = ["MemoryStore", "SessionQuery", "Store"]
