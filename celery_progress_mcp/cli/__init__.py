"""The command line: ``celery-progress-mcp`` and ``celery -A proj progress``.

* ``main.py``: the two roots, each opening a context from ``-A``;
* ``context.py``: the one resolver from ``-A`` to the Celery app and its tracker;
* ``sessions.py``: ``sessions list|show|watch|cancel``, ``stats``, ``cleanup``;
* ``terminal.py``: sessions drawn in the terminal (rich);
* ``dashboard.py``, ``mcp.py``: the servers; ``db.py``: the SQL store's schema.

Nothing in the package imports this one: it sits on top of every floor.
"""

from .main import main, progress

__all__ = ["main", "progress"]
