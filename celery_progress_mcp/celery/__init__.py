"""The Celery integration: ``install(app)``, tracked tasks, signals, canvas, liveness."""

from .errors import TaskCancelled
from .handle import SubOperationProgress, TaskProgress
from .install import install, uninstall
from .liveness import start_liveness_monitor
from .recorder import ProgressRecorder
from .task import ProgressTask, progress_task
from .tracker import CeleryProgressTracker

__all__ = [
    "CeleryProgressTracker",
    "ProgressRecorder",
    "ProgressTask",
    "SubOperationProgress",
    "TaskCancelled",
    "TaskProgress",
    "install",
    "progress_task",
    "start_liveness_monitor",
    "uninstall",
]
