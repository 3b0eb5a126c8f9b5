"""Query-string parsing for the API and the pages: bad input is a 400, never a 500.

Framework-neutral: it reads any mapping with ``get`` and ``getlist``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.errors import InvalidProgress, SessionNotFound
from ..core.states import SessionStatus

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MAX_SEQ",
    "TEXT_PATTERN",
    "ListFilters",
    "QueryParams",
    "checked_id",
    "checked_task_id",
    "has_control_characters",
    "int_param",
    "list_filters",
]

#: Rows per page unless ``limit`` says otherwise.
DEFAULT_PAGE_SIZE = 50
#: The largest ``limit`` accepted.
MAX_PAGE_SIZE = 500
#: The largest ``offset`` accepted (deeper pages: narrow the filters).
MAX_OFFSET = 10_000_000
#: Longest accepted free-text search and operation id, in characters.
MAX_TEXT_CHARS = 200
#: The largest event sequence number accepted in ``since``.
MAX_SEQ = 2**62
#: JSON-Schema pattern of text parameters: no C0 control characters, no DEL.
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"
#: Longest accepted session id, in characters.
MAX_ID_CHARS = 255
#: The ids celery-progress's URL pattern takes (``[\\w-]+``; others match no route
#: there), in ASCII as the OpenAPI document says: ``^[A-Za-z0-9_-]{1,255}$``.
_TASK_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}")


class QueryParams(Protocol):
    """A parsed query string: Starlette's ``QueryParams``, Django's ``QueryDict``."""

    def get(self, key: str, /) -> str | None: ...

    def getlist(self, key: str, /) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class ListFilters:
    statuses: tuple[str, ...] | None
    operation_id: str | None
    search: str | None
    limit: int
    offset: int

    def query(self, **changes: object) -> dict[str, str | int | list[str]]:
        """These filters as query parameters (for links), with ``changes`` applied."""
        params: dict[str, str | int | list[str]] = {}
        if self.statuses:
            params["status"] = list(self.statuses)
        if self.operation_id:
            params["operation_id"] = self.operation_id
        if self.search:
            params["q"] = self.search
        params["limit"] = self.limit
        params["offset"] = self.offset
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value  # type: ignore[assignment]
        return params


def list_filters(params: QueryParams) -> ListFilters:
    statuses: list[str] = []
    for raw in params.getlist("status"):
        statuses.extend(part.strip() for part in raw.split(",") if part.strip())
    known = {status.value for status in SessionStatus}
    unknown = sorted(set(statuses) - known)
    if unknown:
        raise InvalidProgress(
            f"unknown status {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
        )
    return ListFilters(
        statuses=tuple(dict.fromkeys(statuses)) or None,
        operation_id=_text(params, "operation_id"),
        search=_text(params, "q"),
        limit=int_param(params, "limit", DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE),
        offset=int_param(params, "offset", 0, low=0, high=MAX_OFFSET),
    )


def int_param(params: QueryParams, name: str, default: int, *, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:  # absent; given empty is no integer, as the OpenAPI document says
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidProgress(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise InvalidProgress(f"{name} must be between {low} and {high}, got {value}")
    return value


def checked_task_id(value: str) -> str:
    """A task id from a celery-progress URL: what its ``[\\w-]+`` matches, else not found."""
    if not _TASK_ID.fullmatch(value):
        raise SessionNotFound(value[:MAX_ID_CHARS])
    return value


def checked_id(value: str) -> str:
    """A session id from a URL; one no store could hold is not found, without a look-up."""
    if not value or len(value) > MAX_ID_CHARS or has_control_characters(value):
        raise SessionNotFound(value[:MAX_ID_CHARS])
    return value


def _text(params: QueryParams, name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    # Checked before stripping: str.strip() would remove some control characters first.
    if len(raw) > MAX_TEXT_CHARS or has_control_characters(raw):
        raise InvalidProgress(
            f"{name} must be text of at most {MAX_TEXT_CHARS} characters, no control characters"
        )
    return raw.strip() or None


def has_control_characters(value: str) -> bool:
    """C0 controls and DEL: no store keeps them faithfully (PostgreSQL refuses NUL)."""
    return any(ord(char) < 0x20 or char == "\x7f" for char in value)
