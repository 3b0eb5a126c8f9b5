"""The Celery integration: ``install(app)``, tracked tasks, signals, canvas, liveness."""

from .errors import TaskCancelled
from .install import install, start_liveness_monitor, uninstall
from .task import ProgressTask, progress_task
from .task_progress import SubOperationProgress, TaskProgress
from .tracker import CeleryProgressTracker
from .update_state import ProgressRecorder

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
