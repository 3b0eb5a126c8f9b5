"""``celery_progress_mcp.js``, the browser script with celery-progress's API, on the dashboard.

The script is a static file of the Django app
(``django/static/celery_progress_mcp/``, where Django's ``collectstatic``
finds it). The dashboard serves that same package resource, no copy, at
the path Django's default ``STATIC_URL`` gives it::

    <script src="/static/celery_progress_mcp/celery_progress_mcp.js"></script>

Reading a file of the ``django`` package imports nothing of it: the floors
stay apart.
"""

from __future__ import annotations

import importlib.resources

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

__all__ = ["SCRIPT_PATH", "script_mount"]

#: Where the dashboard serves the Django app's static files.
_STATIC_PREFIX = "/static/celery_progress_mcp"
#: The script's path on the dashboard (under a mount, after its prefix).
SCRIPT_PATH = f"{_STATIC_PREFIX}/celery_progress_mcp.js"


def script_mount() -> Mount:
    """The Django app's ``static/celery_progress_mcp/`` folder, read from the package."""
    package = importlib.resources.files("celery_progress_mcp")
    folder = package / "django" / "static" / "celery_progress_mcp"
    return Mount(_STATIC_PREFIX, app=StaticFiles(directory=str(folder)), name="scripts")
