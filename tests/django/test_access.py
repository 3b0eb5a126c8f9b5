"""Who sees the dashboard and its API: Django's users, staff by default; CSRF on the actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from celery_progress_mcp import InProgress, ProgressTracker
from celery_progress_mcp.django.runtime import runtime

pytestmark = pytest.mark.django_db

#: A permission the site has, to grant the dashboard by instead of staff.
CUSTOM = "auth.view_user"


@pytest.fixture
def tracker() -> ProgressTracker:
    return runtime().tracker.tracker


@pytest.fixture
def session_id(tracker: ProgressTracker) -> str:
    made = tracker.create_session("import_rows", {"file": "orders.csv"})
    tracker.update_progress(made, InProgress(percentage=30, current_step="reading"))
    return made


def _urls(session_id: str) -> tuple[list[str], list[str]]:
    pages = [
        "/progress/dashboard/",
        f"/progress/dashboard/sessions/{session_id}",
        f"/progress/dashboard/sessions/{session_id}/history.svg",
    ]
    api = [
        "/progress/api/sessions",
        f"/progress/api/sessions/{session_id}",
        f"/progress/api/sessions/{session_id}/events",
        "/progress/api/stats",
    ]
    return pages, api


def _user(model: Any, name: str, *, staff: bool = False, perm: str | None = None) -> Any:
    user = model.objects.create_user(name, password="pw-for-tests", is_staff=staff)
    if perm is not None:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def test_anonymous_users_are_sent_to_log_in_and_refused_the_api(session_id: str) -> None:
    client = Client()
    pages, api = _urls(session_id)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url
    for url in [*api, "/progress/api/events"]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"] == "forbidden"


def test_users_who_are_not_staff_are_refused(django_user_model: Any, session_id: str) -> None:
    client = Client()
    client.force_login(_user(django_user_model, "visitor"))
    pages, api = _urls(session_id)
    for url in pages:
        assert client.get(url).status_code == 403, url
    for url in api:
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json() == {"error": "forbidden", "detail": "permission denied"}


def test_staff_users_see_everything(django_user_model: Any, session_id: str) -> None:
    client = Client()
    client.force_login(_user(django_user_model, "operator", staff=True))
    pages, api = _urls(session_id)
    for url in [*pages, *api]:
        assert client.get(url).status_code == 200, url
    page = client.get(f"/progress/dashboard/sessions/{session_id}").content.decode()
    assert "reading" in page
    assert "operator" in page
    assert client.get(f"/progress/api/sessions/{session_id}").json()["percentage"] == 30


def test_a_configured_permission_replaces_staff(
    django_user_model: Any, session_id: str, settings: Any
) -> None:
    settings.CELERY_PROGRESS = {**settings.CELERY_PROGRESS, "permission": CUSTOM}
    holder, staff = Client(), Client()
    holder.force_login(_user(django_user_model, "holder", perm=CUSTOM))
    staff.force_login(_user(django_user_model, "staff", staff=True))
    pages, api = _urls(session_id)
    for url in [*pages, *api]:
        assert holder.get(url).status_code == 200, url
        assert staff.get(url).status_code == 403, url


def test_an_action_needs_the_csrf_token(
    django_user_model: Any, session_id: str, tracker: ProgressTracker
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(_user(django_user_model, "operator", staff=True))
    url = f"/progress/api/sessions/{session_id}/pause"
    refused = client.post(url, b'{"reason": "no token"}', content_type="application/json")
    assert refused.status_code == 403
    assert tracker.get_session(session_id).status == "in_progress"
    # The page carries the token its script sends back as X-CSRFToken.
    page = client.get(f"/progress/dashboard/sessions/{session_id}").content.decode()
    token = client.cookies["csrftoken"].value
    assert 'data-csrf="' in page
    paused = client.post(
        url, b'{"reason": "lunch"}', content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert paused.status_code == 200, paused.content
    assert paused.json()["session"]["status"] == "paused"
    assert tracker.get_session(session_id).status == "paused"
