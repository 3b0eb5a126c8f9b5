"""The test project's app as a worker builds it: ``celery -A tests.celery.worker_app worker``."""

from __future__ import annotations

from tests.celery.project import ProjectConfig, make_project

project = make_project(ProjectConfig.from_env())
app = project.app
