"""The server-rendered pages: list, session, chart, errors (with authentication off and on)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from celery_progress_mcp import ProgressTracker

from .conftest import Sessions


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-session="([^"]+)"', html)


def test_list_shows_every_session_with_its_state(client: TestClient, sessions: Sessions) -> None:
    html = client.get("/").text
    assert len(_rows(html)) == 7
    assert 'data-page="list"' in html
    assert '<span class="badge in_progress" data-field="status">in progress</span>' in html
    assert 'value="42.50"' in html  # the running session's bar
    assert "celery@alpha" in html
    assert "ENOSPC: disk full" in html
    assert 'data-stat="active_sessions">4<' in html


def test_list_filters_by_state_and_operation(client: TestClient, sessions: Sessions) -> None:
    assert _rows(client.get("/?status=paused").text) == [sessions.paused]
    assert set(_rows(client.get("/?operation_id=report").text)) == {
        sessions.failed,
        sessions.cancelled,
    }
    assert _rows(client.get("/?q=queued").text) == [sessions.initializing]
    assert "No sessions match." in client.get("/?q=nothing-like-this").text


def test_list_paginates(client: TestClient, sessions: Sessions) -> None:
    first = client.get("/?limit=3").text
    assert len(_rows(first)) == 3
    assert "1\N{EN DASH}3 of 7" in first
    assert 'rel="next" href="/?limit=3&amp;offset=3"' in first
    assert 'rel="prev"' not in first
    last = client.get("/?limit=3&offset=6").text
    assert len(_rows(last)) == 1
    assert 'rel="prev" href="/?limit=3&amp;offset=3"' in last
    assert 'rel="next"' not in last


def test_list_with_bad_filter_is_400(client: TestClient, sessions: Sessions) -> None:
    response = client.get("/?limit=100000")
    assert response.status_code == 400
    assert "limit must be between" in response.text


def test_session_page_shows_sub_operations(client: TestClient, sessions: Sessions) -> None:
    html = client.get(f"/sessions/{sessions.group}").text
    assert re.findall(r'<tr data-sub="([^"]+)"', html) == ["load", "train", "eval"]
    assert "Train &lt;model&gt;" in html
    assert '<span class="badge sub-active">active</span>' in html
    assert 'id="overall"' in html
    assert f'src="/sessions/{sessions.group}/history.svg"' in html
    assert "SubOperationStarted" in html  # the event log


def test_session_page_shows_metadata_and_actions(client: TestClient, sessions: Sessions) -> None:
    html = client.get(f"/sessions/{sessions.running}").text
    assert "&#34;file&#34;: &#34;a.csv&#34;" in html or "&quot;file&quot;" in html
    assert '<button type="button" data-action="pause">' in html
    assert '<button type="button" data-action="resume" hidden>' in html
    finished = client.get(f"/sessions/{sessions.completed}").text
    assert 'data-action="cancel" class="danger" hidden' in finished


def test_unknown_session_page_is_404(client: TestClient, sessions: Sessions) -> None:
    response = client.get("/sessions/nope")
    assert response.status_code == 404
    assert "No such session." in response.text


def test_history_chart_is_svg(client: TestClient, sessions: Sessions) -> None:
    response = client.get(f"/sessions/{sessions.completed}/history.svg")
    assert response.headers["content-type"].startswith("image/svg+xml")
    svg = response.text
    assert svg.startswith("<svg")
    assert "<polyline" in svg
    # a marker for each state the session went through
    assert svg.count("<circle") == 3


@pytest.mark.parametrize("auth_mode", ["open"])
def test_static_assets_ship_with_the_package(client: TestClient) -> None:
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text
    assert client.get("/static/dashboard.css").status_code == 200


@pytest.mark.parametrize("auth_mode", ["open"])
def test_empty_store(client: TestClient, tracker: ProgressTracker) -> None:
    html = client.get("/").text
    assert "0 of 0" in html
    assert "No sessions match." in html


@pytest.mark.parametrize("auth_mode", ["open"])
def test_event_log_shows_the_newest_events(client: TestClient, tracker: ProgressTracker) -> None:
    from celery_progress_mcp import InProgress
    from celery_progress_mcp.monitor.pages import EVENT_LOG_ROWS

    session_id = tracker.create_session("chatty")
    for step in range(1, 1200):
        tracker.update_progress(
            session_id, InProgress(percentage=step / 12, current_step=f"s{step}")
        )
    html = client.get(f"/sessions/{session_id}").text
    log = html[html.index('id="events"') :]
    assert len(re.findall(r"<tr><td>\d+</td>", log)) == EVENT_LOG_ROWS
    assert "s1199" in log
    assert "\N{MIDDLE DOT} s1000<" in log  # the oldest shown: 1,201 events, the newest 200
    assert "\N{MIDDLE DOT} s999<" not in log
    assert f"{1201 - EVENT_LOG_ROWS} older events not shown." in html


@pytest.mark.parametrize("auth_mode", ["open"])
def test_chart_follows_sub_operations_without_a_percentage(
    client: TestClient, tracker: ProgressTracker
) -> None:
    from celery_progress_mcp import InProgress, SubOperation

    session_id = tracker.create_session("staged")
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    tracker.start_sub_operation(session_id, "a")
    for pct in (25, 50, 75):
        tracker.update_sub_operation(session_id, "a", percentage=pct)
        tracker.update_progress(session_id, InProgress(current_step=f"at {pct}"))
    svg = client.get(f"/sessions/{session_id}/history.svg").text
    points = re.search(r'<polyline points="([^"]+)"', svg)
    assert points is not None
    heights = [float(point.split(",")[1]) for point in points.group(1).split()]
    assert heights[-1] < heights[0]  # the line climbs (SVG y grows downwards)
