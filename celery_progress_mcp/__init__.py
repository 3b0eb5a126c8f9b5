"""Granular, durable, real-time progress tracking for Celery tasks.

The public surface: everything users and tests rely on is imported here.
"""

from .bus.base import EventBus
from .celery import (
    CeleryProgressTracker,
    ProgressRecorder,
    ProgressTask,
    TaskCancelled,
    install,
    progress_task,
)
from .core.config import ProgressConfig, ProgressGranularity
from .core.errors import (
    CapacityExceeded,
    ConfigError,
    InvalidProgress,
    InvalidTransition,
    ProgressError,
    SessionNotFound,
    StoreUnavailable,
    SubOperationNotFound,
    TrackingDisabled,
)
from .core.models import (
    ProgressEvent,
    ProgressEventType,
    ProgressSession,
    ProgressSnapshot,
    ProgressStats,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)
from .core.states import (
    Cancelled,
    Completed,
    Failed,
    Initializing,
    InProgress,
    Paused,
    ProgressState,
    SessionStatus,
)
from .store.base import SessionQuery, Store
from .tracking import (
    AsyncProgressTracker,
    AsyncSubscription,
    CleanupResult,
    ProgressTracker,
    Subscription,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncProgressTracker",
    "AsyncSubscription",
    "Cancelled",
    "CapacityExceeded",
    "CeleryProgressTracker",
    "CleanupResult",
    "Completed",
    "ConfigError",
    "EventBus",
    "Failed",
    "InProgress",
    "Initializing",
    "InvalidProgress",
    "InvalidTransition",
    "Paused",
    "ProgressConfig",
    "ProgressError",
    "ProgressEvent",
    "ProgressEventType",
    "ProgressGranularity",
    "ProgressRecorder",
    "ProgressSession",
    "ProgressSnapshot",
    "ProgressState",
    "ProgressStats",
    "ProgressTask",
    "ProgressTracker",
    "SessionNotFound",
    "SessionQuery",
    "SessionStatus",
    "Store",
    "StoreUnavailable",
    "SubOperation",
    "SubOperationNotFound",
    "SubOperationState",
    "SubOperationUpdate",
    "Subscription",
    "TaskCancelled",
    "TrackingDisabled",
    "__version__",
    "install",
    "progress_task",
]
