"""The web dashboard, JSON API, SSE stream and Prometheus metrics (``pip install
celery-progress-mcp[web]``)."""

from .app import create_app

__all__ = ["create_app"]
