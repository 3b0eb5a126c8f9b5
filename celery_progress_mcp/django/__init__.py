"""The Django app: celery-progress's URLs, the dashboard inside the site, a progress bar tag.

``pip install celery-progress-mcp[django]``, then::

    INSTALLED_APPS = [..., "celery_progress_mcp.django"]
    urlpatterns = [..., path("celery-progress/", include("celery_progress_mcp.django.urls"))]

and ``manage.py migrate``. Tracking is installed on the project's Celery
app when Django starts (in the web process and in the worker), configured
by ``settings.CELERY_PROGRESS`` (:mod:`.conf`); the store is the project's
database unless a ``store_url`` says otherwise. The dashboard
(``dashboard/``) is for staff users, or for holders of a permission the
settings name (:mod:`.access`). In templates::

    {% load celery_progress_mcp %}
    {% progress_bar task_id %}
"""
