"""No models: the store's tables are its own (``progress_*``), made by its Alembic migrations.

This module exists so that Django sends this app ``post_migrate``, which
runs them (:mod:`.schema`).
"""
