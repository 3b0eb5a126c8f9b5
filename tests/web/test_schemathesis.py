"""schemathesis against the OpenAPI description: generated requests, every check, no server error.

Each API operation gets its own hypothesis test built from schemathesis's
strategy (its pytest plugin's fixture loader does not run on this pytest).
The live streams may not end (``/api/events`` never does, a task's stream
not before the task), so they are left to tests/web/test_live.py and
tests/web/test_compat_stream.py.
Both authentication modes run: the token mode sends the bearer header. Both
generation modes run: valid requests must be answered as documented, and
requests the schema forbids (negative cases) must be refused as documented.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.schemas import BaseSchema

from celery_progress_mcp import InProgress, ProgressConfig, ProgressTracker, SubOperation
from celery_progress_mcp.web import create_app
from celery_progress_mcp.web.openapi import openapi_document

from .conftest import TOKEN

#: Event streams: endless, or as long as a task.
_STREAMS = {
    "/api/events",
    "/celery-progress/{task_id}/stream/",
    "/celery-progress/g/{group_id}/stream/",
}
#: Generated cases per API operation and authentication mode.
EXAMPLES_PER_OPERATION = 40

_OPERATIONS = [
    (path, method.upper())
    for path, item in openapi_document()["paths"].items()
    if path not in _STREAMS
    for method in item
]


def _seeded_tracker() -> ProgressTracker:
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0))
    running = tracker.create_session("file_processing", session_id="task-1")
    tracker.update_progress(running, InProgress(percentage=40, current_step="rows"))
    group = tracker.create_session("group", session_id="group-1")
    tracker.add_sub_operations(group, [SubOperation(id="a", name="A")])
    finished = tracker.create_session("report", session_id="task-2")
    tracker.complete_session(finished, "ok")
    return tracker


def _takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _headers(auth: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"} if auth == "token" else {}


@functools.cache
def _schema(auth: str) -> BaseSchema:
    token = TOKEN if auth == "token" else None
    # The ASGI test client calls itself "testserver": allowed here, checked in test_security.
    app = create_app(_seeded_tracker(), token=token, allowed_hosts=["testserver"])
    return schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=_headers(auth))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("auth", ["open", "token"])
@pytest.mark.parametrize(("path", "method"), _OPERATIONS)
def test_operation_conforms(path: str, method: str, auth: str, mode: GenerationMode) -> None:
    operation = _schema(auth)[path][method]
    headers = _headers(auth)
    if mode is GenerationMode.NEGATIVE and not _takes_input(operation.definition.raw):
        pytest.skip("no parameter and no body: no request the schema forbids")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def conforms(case: Case[Any]) -> None:
        case.call_and_validate(headers=headers)

    conforms()


def test_every_operation_but_the_stream_is_covered() -> None:
    assert len(_OPERATIONS) == 10
