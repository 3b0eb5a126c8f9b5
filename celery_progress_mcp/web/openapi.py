"""The OpenAPI 3.1 description of the JSON API, with schemas generated from the response models."""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from ..core.models import ProgressEventType
from ..core.states import SessionStatus
from ..monitor import schemas
from ..monitor.params import (
    MAX_ID_CHARS,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    MAX_SEQ,
    MAX_TEXT_CHARS,
    TEXT_PATTERN,
)

__all__ = ["openapi_document"]

#: The schemas the document defines under ``components``.
_MODELS = (
    schemas.ActionRequest,
    schemas.ActionResult,
    schemas.CeleryGroupProgressResponse,
    schemas.CeleryProgressResponse,
    schemas.ErrorResponse,
    schemas.EventPage,
    schemas.SessionDetail,
    schemas.SessionPageResponse,
    schemas.StatsResponse,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _compat_stream(parameter: str, *, group: bool) -> dict[str, Any]:
    """A live stream of the celery-progress answers of ``/celery-progress/[g/]<id>/``."""
    answers = "a group's answers" if group else "a task's answers"
    return {
        "get": {
            "summary": f"celery-progress's JSON, live: {answers} (Server-Sent Events).",
            "description": (
                "Frames: `progress`, whose data is what the polling endpoint answers at that "
                "moment plus `sub_operations` (`[{id, name, status, percentage}]`, the "
                "session's; empty without one): at once, on each change, and every few "
                "seconds. The stream ends after an answer with `complete: true` (except a "
                "`RETRY`). A read that fails later is an `error` frame with the polling "
                "endpoint's JSON body for it, then the end."
            ),
            "parameters": [
                {
                    "name": parameter,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,255}$"},
                }
            ],
            "responses": {
                "200": {
                    "description": "An event stream that ends with the task.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "404": _error(
                    "No session and no saved GroupResult has this id."
                    if group
                    else "Not a task id (only letters, digits, `_` and `-`)."
                ),
                **_AUTH_ERRORS,
                "503": _error(
                    "The store or the result backend is unavailable, or too many streams are open."
                ),
            },
        }
    }


def _error(description: str) -> dict[str, Any]:
    return _json_body("ErrorResponse", description)


_AUTH_ERRORS = {
    "401": _error("Authentication required (a token or basic auth is configured)."),
    "400": _error("Bad input."),
    "503": _error("The store is unavailable or tracking is disabled."),
}

#: Errors any operation may answer, besides its own: all JSON, as ErrorResponse.
_EVERY_OPERATION_ERRORS = {
    "404": _error("No such route (or resource)."),
    "405": _error("Method not allowed here (see the Allow header)."),
    "429": _error(
        "Too many failed logins from this address: retry after the Retry-After header's seconds."
    ),
}

_SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_CHARS,
        "pattern": TEXT_PATTERN,
    },
}

_CSRF = {
    "name": "X-Requested-With",
    "in": "header",
    "required": True,
    "description": "Any value: proves the request is not a cross-site form (CSRF).",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,40}$"},
}


def _action(summary: str, *, with_reason: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [_SESSION_ID, _CSRF],
        "responses": {
            "200": _json_body("ActionResult", "The session after the change."),
            "403": _error("Refused: missing X-Requested-With header or foreign Origin."),
            "404": _error("No such session."),
            "409": _error("The move is not allowed from the session's state."),
            **_AUTH_ERRORS,
        },
    }
    if with_reason:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": _ref("ActionRequest")}},
        }
    return operation


@functools.cache
def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "serialization") for model in _MODELS],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def openapi_document(root_path: str = "") -> dict[str, Any]:
    statuses = [status.value for status in SessionStatus]
    paths: dict[str, Any] = {
        "/api/sessions": {
            "get": {
                "summary": "Sessions, newest first, filtered and paginated.",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "style": "form",
                        "explode": True,
                        "schema": {"type": "array", "items": {"enum": statuses}},
                    },
                    {
                        "name": "operation_id",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "maxLength": MAX_TEXT_CHARS,
                            "pattern": TEXT_PATTERN,
                        },
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "description": "Substring of the session id or operation id.",
                        "schema": {
                            "type": "string",
                            "maxLength": MAX_TEXT_CHARS,
                            "pattern": TEXT_PATTERN,
                        },
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                    },
                ],
                "responses": {
                    "200": _json_body("SessionPageResponse", "One page of sessions."),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/sessions/{session_id}": {
            "get": {
                "summary": "One session with sub-operations, metadata and history.",
                "parameters": [_SESSION_ID],
                "responses": {
                    "200": _json_body("SessionDetail", "The session."),
                    "404": _error("No such session."),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/sessions/{session_id}/events": {
            "get": {
                "summary": "The session's logged events after a sequence number.",
                "parameters": [
                    _SESSION_ID,
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": _json_body("EventPage", "Events, oldest first."),
                    "404": _error("No such session."),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/sessions/{session_id}/cancel": {
            "post": _action("Cancel the session (and revoke its Celery task).", with_reason=True)
        },
        "/api/sessions/{session_id}/pause": {
            "post": _action("Pause the session.", with_reason=True)
        },
        "/api/sessions/{session_id}/resume": {
            "post": _action("Resume a paused session.", with_reason=False)
        },
        "/api/stats": {
            "get": {
                "summary": "Counts and rates over the store.",
                "responses": {"200": _json_body("StatsResponse", "Statistics."), **_AUTH_ERRORS},
            }
        },
        "/api/events": {
            "get": {
                "summary": "Live updates (Server-Sent Events), coalesced per session.",
                "description": (
                    "Frames: `hello` (`{seq}`), `progress` (`{seq, updates: [...]}`, at most one "
                    "update per session per frame; the SSE id is the highest event sequence "
                    "number covered), `resync` (refetch through the API). Reconnecting with "
                    "`Last-Event-ID` (or `since`) replays the event log from there. Event "
                    f"types: {', '.join(t.value for t in ProgressEventType)}."
                ),
                "parameters": [
                    {
                        "name": "session_id",
                        "in": "query",
                        "description": "Watch only these sessions (repeatable).",
                        "style": "form",
                        "explode": True,
                        "schema": {"type": "array", "items": {"type": "string"}},
                    },
                    {
                        "name": "include_new",
                        "in": "query",
                        "description": "With session_id: also announce newly created sessions.",
                        "schema": {"type": "boolean"},
                    },
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                    },
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "An endless event stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_AUTH_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics.",
                "responses": {
                    "200": {
                        "description": "The text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _AUTH_ERRORS["401"],
                },
            }
        },
        "/celery-progress/{task_id}/": {
            "get": {
                "summary": "celery-progress's JSON for any task (its session, else the backend).",
                "parameters": [
                    {
                        "name": "task_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,255}$"},
                    }
                ],
                "responses": {
                    "200": _json_body("CeleryProgressResponse", "celery-progress's answer."),
                    "404": _error("Not a task id (only letters, digits, `_` and `-`)."),
                    **_AUTH_ERRORS,
                    "503": _error("The store or the result backend is unavailable."),
                },
            }
        },
        "/celery-progress/g/{group_id}/": {
            "get": {
                "summary": "celery-progress's JSON for a group (its members' progress summed).",
                "parameters": [
                    {
                        "name": "group_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,255}$"},
                    }
                ],
                "responses": {
                    "200": _json_body("CeleryGroupProgressResponse", "celery-progress's answer."),
                    "404": _error("No session and no saved GroupResult has this id."),
                    **_AUTH_ERRORS,
                    "503": _error("The store or the result backend is unavailable."),
                },
            }
        },
        "/celery-progress/{task_id}/stream/": _compat_stream("task_id", group=False),
        "/celery-progress/g/{group_id}/stream/": _compat_stream("group_id", group=True),
    }
    for item in paths.values():
        for operation in item.values():
            responses = operation["responses"]
            for status, response in _EVERY_OPERATION_ERRORS.items():
                responses.setdefault(status, response)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "celery-progress-mcp dashboard API",
            "version": "1",
            "description": (
                "Progress sessions of Celery tasks. When the dashboard has a token, send "
                "`Authorization: Bearer <token>`; state-changing requests need the "
                "`X-Requested-With` header."
            ),
        },
        "servers": [{"url": root_path or "/"}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "basicAuth": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{}, {"bearerAuth": []}, {"basicAuth": []}],
    }
