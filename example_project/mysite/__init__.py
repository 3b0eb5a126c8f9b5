"""A small Django site beside the Celery project ``proj``, a user of ``celery_progress_mcp.django``.

Its page starts the example's pipeline and shows its bar live, with the
pipeline's stages; the dashboard is under ``/celery-progress/dashboard/``,
behind the admin's login. ``python manage.py runsite`` runs it with the
example's worker (see the README).
"""
