"""Event buses: the fast path from the store to subscribers."""

from .base import EventBus
from .local import LocalBus

__all__ = ["EventBus", "LocalBus"]
