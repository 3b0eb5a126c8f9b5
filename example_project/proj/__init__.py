"""An example Celery project that tracks its tasks' progress with celery-progress-mcp."""

from .celery import app, tracker

__all__ = ["app", "tracker"]
