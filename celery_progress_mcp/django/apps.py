"""The app's configuration: tracking installed as Django starts, the store migrated by migrate."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

__all__ = ["CeleryProgressConfig"]


class CeleryProgressConfig(AppConfig):
    name = "celery_progress_mcp.django"
    label = "celery_progress_mcp"
    verbose_name = "Celery progress"

    def ready(self) -> None:
        from .runtime import install_tracking
        from .schema import migrate_store

        post_migrate.connect(migrate_store, sender=self, dispatch_uid=f"{self.label}.store")
        install_tracking()
