"""A subscriber in another process sees every event, in order, with no gap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.celery.project import Project
from tests.celery.workers import ROOT

UPDATES = 1000


@pytest.mark.parametrize("configured", ["redis-postgresql", "rabbitmq-sqlite"], indirect=True)
def test_a_subscriber_in_another_process_gets_every_event_in_order(project: Project) -> None:
    assert project.config.window_ms == 0  # every update is an event
    session_id = str(uuid.uuid4())
    env = {**os.environ, **project.config.env(), "PYTHONPATH": str(ROOT)}
    subscriber = subprocess.Popen(
        [sys.executable, "-m", "tests.celery.subscriber", session_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert subscriber.stdout is not None
        assert subscriber.stdout.readline().strip() == "ready"
        result = project.burst.apply_async((UPDATES,), task_id=session_id)
        assert result.get(timeout=120) == UPDATES
        output, _ = subscriber.communicate(timeout=120)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
    assert subscriber.returncode == 0
    received = [json.loads(line) for line in output.splitlines() if line.strip()]
    seqs = [event["seq"] for event in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # in order, no gap
    logged = project.tracker.store.events_since(0, session_id=session_id, limit=10 * UPDATES)
    mine = [(e["seq"], e["type"]) for e in received if e["session_id"] == session_id]
    assert mine == [(event.seq, event.event_type) for event in logged]
    progress = [seq for seq, kind in mine if kind == "ProgressUpdated"]
    assert len(progress) >= UPDATES
