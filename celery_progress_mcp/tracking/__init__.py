"""The tracker: the engine composed with a store, a bus, a clock and threads."""

from .aio import AsyncProgressTracker
from .subscription import AsyncSubscription, Subscription
from .tracker import CleanupResult, ProgressTracker

__all__ = [
    "AsyncProgressTracker",
    "AsyncSubscription",
    "CleanupResult",
    "ProgressTracker",
    "Subscription",
]
