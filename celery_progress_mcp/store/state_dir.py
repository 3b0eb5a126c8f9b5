"""Where the package keeps its files on this machine: the state directory.

One rule for every file that must outlive a process here: the default
SQLite store of a Celery app (``celery.settings.default_store_url``) and the
journal of writes a closing process could not write (``tracking.journal``).
The first of:

* ``$CELERY_PROGRESS_STATE_DIR``;
* ``$XDG_STATE_HOME/celery-progress-mcp``;
* ``~/.local/state/celery-progress-mcp``.

The directory is named, not made: whoever writes there makes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["APP_DIR_NAME", "STATE_DIR_ENV", "state_directory"]

#: Environment variable naming the state directory itself.
STATE_DIR_ENV = "CELERY_PROGRESS_STATE_DIR"
#: The package's directory under ``$XDG_STATE_HOME`` (or ``~/.local/state``).
APP_DIR_NAME = "celery-progress-mcp"


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The state directory as ``environ`` (default: the process's) names it; absolute."""
    env = os.environ if environ is None else environ
    directory = env.get(STATE_DIR_ENV)
    if directory:
        return Path(directory).absolute()
    state_home = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return (Path(state_home) / APP_DIR_NAME).absolute()
