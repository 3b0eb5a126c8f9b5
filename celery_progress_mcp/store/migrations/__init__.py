"""Alembic migrations of the SQL store's schema (applied by ``celery-progress-mcp db upgrade``)."""
