"""``/metrics`` when the store fails, and the registry being the app's own."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from celery_progress_mcp import ProgressConfig, ProgressTracker, SessionQuery, StoreUnavailable
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.web import create_app


class FlakyStore(MemoryStore):
    """A memory store whose reads fail while ``down`` is set, as a lost database would."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the database went away")

    def list_sessions(self, query: SessionQuery) -> Any:
        self._check()
        return super().list_sessions(query)

    def stats(self) -> Any:
        self._check()
        return super().stats()


def test_store_errors_are_counted_and_answered_503() -> None:
    store = FlakyStore()
    with ProgressTracker(ProgressConfig(), store=store) as tracker:
        tracker.create_session("x")
        with TestClient(create_app(tracker), base_url="http://127.0.0.1") as client:
            store.down = True
            response = client.get("/api/sessions")
            assert response.status_code == 503
            assert response.json()["error"] == "store_unavailable"
            assert client.get("/api/stats").status_code == 503
            text = client.get("/metrics").text
            assert "celery_progress_store_up 0.0" in text
            assert "celery_progress_process_store_errors_total 2.0" in text  # the two API calls
            store.down = False
            text = client.get("/metrics").text
            assert "celery_progress_store_up 1.0" in text
            # the failed scrape shows from the next scrape on (counters come first)
            assert "celery_progress_process_store_errors_total 3.0" in text
            assert client.get("/api/sessions").status_code == 200


def test_each_app_has_its_own_registry() -> None:
    with ProgressTracker(ProgressConfig()) as tracker:
        first = create_app(tracker)
        second = create_app(tracker)
        tracker.create_session("counted by both")
        for app in (first, second):
            with TestClient(app, base_url="http://127.0.0.1") as client:
                text = client.get("/metrics").text
                created = 'celery_progress_process_events_total{event_type="SessionCreated"}'
                assert f"{created} 1.0" in text
