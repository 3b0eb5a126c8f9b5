"""The web dashboard, JSON API, SSE stream and Prometheus metrics (``pip install
celery-progress-mcp[web]``).

Names are imported on first use, so the CLI can register the ``dashboard``
command without loading Starlette.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .tracker_access import ActionHook

__all__ = ["ActionHook", "create_app"]

_HOMES = {"ActionHook": "tracker_access", "create_app": "app"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
