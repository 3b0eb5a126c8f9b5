"""``manage.py migrate`` creates and upgrades the store's tables.

The store's schema has its own migrations (Alembic's, shipped in the
package, the ones ``celery-progress-mcp db upgrade`` runs): they are what
every process of every project runs, Django or not, and they take a lock
so that processes starting together migrate once. Django migrations that
wrapped them would run once and be recorded, and then miss the store's
later revisions. So the app runs them on ``post_migrate``, every time
``migrate`` runs: an up-to-date store costs one query, an empty or older one
is upgraded. ``migrate`` stays the one command a Django user runs.

Only when ``migrate`` runs on the database ``CELERY_PROGRESS["database"]``
names (``default`` unless said); the store migrated is the one this process
tracks with.
"""

from __future__ import annotations

import logging
from typing import Any

from ..store.sql.migrate import upgrade
from .conf import app_settings
from .runtime import install_tracking

__all__ = ["migrate_store"]

logger = logging.getLogger(__name__)


def migrate_store(using: str = "default", verbosity: int = 1, **kwargs: Any) -> None:
    """``post_migrate``'s receiver: upgrade the store's schema to the newest revision."""
    settings = app_settings()
    if settings.database != using:
        return
    # The store this process tracks with: CELERY_PROGRESS's, or that of an install(app)
    # the project's celery.py made before Django started.
    url = install_tracking().config.store_url
    if not url or url.startswith("memory:"):
        return
    revision = upgrade(url)
    if verbosity >= 1:
        print(f"  Progress store at revision {revision}.")  # as migrate reports its own
    logger.info("progress store at revision %s", revision)
