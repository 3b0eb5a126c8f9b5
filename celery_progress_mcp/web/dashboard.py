"""The dashboard: what every route of one app shares, found on the request."""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment
from starlette.requests import Request

from ..monitor.compat_reader import CompatReader
from ..monitor.live import LiveHub
from ..monitor.tracker_access import TrackerAccess
from .metrics import DashboardMetrics
from .security import AuthSettings
from .throttle import LoginThrottle

__all__ = ["Dashboard", "dashboard_of"]


@dataclass(frozen=True, slots=True)
class Dashboard:
    access: TrackerAccess
    hub: LiveHub
    metrics: DashboardMetrics
    auth: AuthSettings
    templates: Environment
    title: str
    #: celery-progress's answers (``/celery-progress/...``).
    celery_progress: CompatReader
    #: Failed logins per client address (the form's and the middleware's).
    throttle: LoginThrottle


def dashboard_of(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board
