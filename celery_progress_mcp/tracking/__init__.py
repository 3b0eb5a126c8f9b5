"""The tracker: the engine composed with a store, a bus, a clock and threads."""

from .aio import AsyncProgressTracker
from .housekeeping import CleanupResult
from .subscription import AsyncSubscription, Subscription
from .tracker import ProgressTracker

__all__ = [
    "AsyncProgressTracker",
    "AsyncSubscription",
    "CleanupResult",
    "ProgressTracker",
    "Subscription",
]
