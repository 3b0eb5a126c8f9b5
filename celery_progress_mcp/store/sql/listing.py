"""Listing and counting sessions: one statement per shape of query, built once.

A ``SessionQuery`` has a shape (which filters are set, how many statuses)
and values. Each shape's statement is built once with bound parameters and
kept, so a dashboard polling a page pays neither the construction nor the
compilation again; the values go in as parameters.

Pages are read newest first (ties: the greater id first). With several
statuses, each status's newest rows come from its own range of the
(status, created_at, id) index, in order, and the few are merged: a
planner given ``status IN (...)`` walks every session by creation time
instead, filtering, which is slow when most sessions have finished.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    func,
    or_,
    select,
    union_all,
)

from ..base import SessionQuery
from .schema import sessions
from .statements import SESSION_COLUMNS

__all__ = ["count_statement", "page_statement"]


#: The LIKE escape character of search patterns.
_ESCAPE = "/"


def _contains_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards taken literally."""
    for special in (_ESCAPE, "%", "_"):
        text = text.replace(special, _ESCAPE + special)
    return f"%{text}%"


class _Shape(NamedTuple):
    statuses: int | None
    operation: bool
    parent: bool
    after: bool
    before: bool
    search: bool


def _shape(query: SessionQuery, statuses: list[str] | None) -> _Shape:
    return _Shape(
        None if statuses is None else len(statuses),
        query.operation_id is not None,
        query.parent_id is not None,
        query.created_after is not None,
        query.created_before is not None,
        bool(query.search),
    )


def _statuses(query: SessionQuery) -> list[str] | None:
    return None if query.statuses is None else [str(s) for s in dict.fromkeys(query.statuses)]


def _parameters(query: SessionQuery, statuses: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "f_limit": query.limit,
        "f_offset": query.offset,
        "f_reach": query.limit + query.offset,
        "f_operation": query.operation_id,
        "f_parent": query.parent_id,
        "f_after": query.created_after,
        "f_before": query.created_before,
        "f_search": _contains_pattern(query.search.casefold()) if query.search else None,
    }
    for index, status in enumerate(statuses or ()):
        params[f"f_status_{index}"] = status
    return params


def _conditions(shape: _Shape, statuses: range | None) -> list[ColumnElement[bool]]:
    """The filters of ``shape``; ``statuses``: which status parameters to match."""
    where: list[ColumnElement[bool]] = []
    if statuses is not None:
        if len(statuses) == 0:
            where.append(sessions.c.id.is_(None))  # no status wanted: nothing matches
        elif len(statuses) == 1:
            where.append(sessions.c.status == bindparam(f"f_status_{statuses[0]}"))
        else:
            where.append(
                sessions.c.status.in_([bindparam(f"f_status_{index}") for index in statuses])
            )
    if shape.operation:
        where.append(sessions.c.operation_id == bindparam("f_operation"))
    if shape.parent:
        where.append(sessions.c.parent_id == bindparam("f_parent"))
    if shape.after:
        where.append(
            sessions.c.created_at >= bindparam("f_after", type_=sessions.c.created_at.type)
        )
    if shape.before:
        where.append(
            sessions.c.created_at < bindparam("f_before", type_=sessions.c.created_at.type)
        )
    if shape.search:
        pattern = bindparam("f_search", type_=String)
        where.append(
            or_(
                func.lower(sessions.c.id).like(pattern, escape=_ESCAPE),
                func.lower(sessions.c.operation_id).like(pattern, escape=_ESCAPE),
            )
        )
    return where


@functools.lru_cache(maxsize=128)
def _page(shape: _Shape) -> Select[Any]:
    newest_first = (sessions.c.created_at.desc(), sessions.c.id.desc())
    limit = bindparam("f_limit", type_=Integer)
    offset = bindparam("f_offset", type_=Integer)
    if shape.statuses is None or shape.statuses < 2:
        statuses = None if shape.statuses is None else range(shape.statuses)
        return (
            select(*SESSION_COLUMNS)
            .where(*_conditions(shape, statuses))
            .order_by(*newest_first)
            .limit(limit)
            .offset(offset)
        )
    parts = []
    for index in range(shape.statuses):
        part = (
            select(*SESSION_COLUMNS)
            .where(*_conditions(shape, range(index, index + 1)))
            .order_by(*newest_first)
            .limit(bindparam("f_reach", type_=Integer))
            .subquery()
        )
        parts.append(select(*part.c))
    merged = union_all(*parts).subquery()
    return (
        select(*merged.c)
        .order_by(merged.c.created_at.desc(), merged.c.id.desc())
        .limit(limit)
        .offset(offset)
    )


@functools.lru_cache(maxsize=128)
def _count(shape: _Shape) -> Select[Any]:
    statuses = None if shape.statuses is None else range(shape.statuses)
    return select(func.count()).select_from(sessions).where(*_conditions(shape, statuses))


def page_statement(query: SessionQuery) -> tuple[Select[Any], dict[str, Any]]:
    """The statement of ``query``'s page, and its parameters."""
    statuses = _statuses(query)
    return _page(_shape(query, statuses)), _parameters(query, statuses)


def count_statement(query: SessionQuery) -> tuple[Select[Any], dict[str, Any]]:
    statuses = _statuses(query)
    return _count(_shape(query, statuses)), _parameters(query, statuses)
