"""The site as an ASGI application: ``uvicorn mysite.asgi:application``.

Under ``DEBUG`` it serves the apps' static files as ``runserver`` does, so
that the page's script loads on a local run without ``collectstatic``.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_asgi_application()
if settings.DEBUG:
    application = ASGIStaticFilesHandler(application)
