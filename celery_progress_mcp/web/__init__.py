"""The web dashboard, JSON API, SSE stream and Prometheus metrics (``pip install
celery-progress-mcp[web]``).

``create_app`` is imported on first use, so the CLI can register the
``dashboard`` command without loading Starlette; ``ActionHook`` (the type of
its ``cancel``) needs nothing of the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..monitor.tracker_access import ActionHook

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["ActionHook", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
