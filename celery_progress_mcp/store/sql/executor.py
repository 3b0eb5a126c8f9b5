"""The write path's executor: Core statements compiled once, run on the driver's cursor.

SQLAlchemy's ``Connection.execute`` costs tens of microseconds per call
before the database sees anything; a progress update makes about eight
statements, so that overhead alone would cap an SQLite store at a few
hundred updates per second. Here each statement of ``statements.py`` is
compiled once per dialect (SQL text, parameter order, and the column types'
bind and result processors, all through SQLAlchemy's public API), then run
on the DBAPI cursor of a pooled connection.

On PostgreSQL, statements submitted inside :meth:`Executor.pipeline` are
sent together (psycopg's pipeline mode) and the results are read when the
first one is fetched, so a group of statements costs one round trip.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, TypeDecorator
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

__all__ = ["Executor", "Prepared", "Row", "compile_for"]

#: A result row: column name to Python value.
Row = dict[str, Any]

_Processor = Callable[[Any], Any]


class Prepared:
    """One statement compiled for one dialect."""

    __slots__ = (
        "_bind",
        "_columns",
        "_defaults",
        "_names",
        "_pick",
        "_positions",
        "_results",
        "sql",
    )

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self._names: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if dialect.positional else None
        )
        self._bind: dict[str, _Processor] = {}
        #: Values written into the statement (``id == 1``), already processed.
        self._defaults: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.value is not None:
                value = bind.effective_value
                self._defaults[name] = value if processor is None else processor(value)
            elif processor is not None:
                self._bind[name] = processor
        names = self._names or ()
        #: Positional dialects: the values in parameter order, picked in C...
        self._pick: Callable[[Mapping[str, Any]], Any] = (
            operator.itemgetter(*names) if names else (lambda values: ())
        )
        #: ...then processed where a type asks for it.
        self._positions = tuple(
            (index, self._bind[name]) for index, name in enumerate(names) if name in self._bind
        )
        columns = getattr(statement, "exported_columns", ())
        self._columns = tuple(column.key for column in columns)
        # Drivers return numbers and strings as they are stored; only our own
        # types (aware datetimes) convert what comes back.
        self._results: tuple[_Processor | None, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            if isinstance(column.type, TypeDecorator)
            else None
            for column in columns
        )

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        if self._names is None:
            merged = {**self._defaults, **values}
            for name, processor in self._bind.items():
                if name in merged:
                    merged[name] = processor(merged[name])
            return merged
        if self._defaults:
            values = {**self._defaults, **values}
        picked = self._pick(values)
        ordered = [picked] if len(self._names) == 1 else list(picked)
        for index, process in self._positions:
            ordered[index] = process(ordered[index])
        return ordered

    def row(self, values: Sequence[Any]) -> Row:
        return {
            name: value if processor is None else processor(value)
            for name, processor, value in zip(self._columns, self._results, values, strict=True)
        }


def compile_for(dialect: Dialect) -> Callable[[ClauseElement], Prepared]:
    """A memoising compiler: each statement object is compiled once."""
    cache: dict[int, tuple[ClauseElement, Prepared]] = {}

    def prepared(statement: ClauseElement) -> Prepared:
        hit = cache.get(id(statement))
        if hit is None or hit[0] is not statement:
            hit = cache[id(statement)] = (statement, Prepared(statement, dialect))
        return hit[1]

    return prepared


class Executor:
    """Runs prepared statements on one DBAPI connection, inside a transaction the caller owns."""

    def __init__(
        self,
        dbapi_connection: Any,
        prepare: Callable[[ClauseElement], Prepared],
        *,
        pipelines: bool,
        commit_command: bool,
    ) -> None:
        self._connection = dbapi_connection
        self._prepare = prepare
        self._pipelines = pipelines
        self._cursor = dbapi_connection.cursor()
        # SQLite runs in the driver's autocommit mode, its transactions ours.
        self._commit_command = commit_command
        #: Set when the commit has been sent: a failure from then on is ambiguous.
        self.committing = False
        self.committed = False

    def commit(self) -> None:
        """Commit (inside a pipeline: with the pipeline's one sync)."""
        self.committing = True
        if self._commit_command:
            self._cursor.execute("COMMIT")
        else:
            self._connection.commit()
        self.committed = True

    def command(self, sql: str) -> None:
        """Run a fixed SQL command (``BEGIN IMMEDIATE``, ``COMMIT``)."""
        self._cursor.execute(sql)

    def run(self, statement: ClauseElement, values: Mapping[str, Any] | None = None) -> int:
        """Execute; return the row count."""
        prepared = self._prepare(statement)
        cursor = self._cursor
        cursor.execute(prepared.sql, prepared.parameters(values or {}))
        return int(cursor.rowcount)

    def run_many(self, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        prepared = self._prepare(statement)
        self._cursor.executemany(prepared.sql, [prepared.parameters(row) for row in rows])

    def submit(self, statement: ClauseElement, values: Mapping[str, Any] | None = None) -> Pending:
        """Execute on a cursor of its own, whose rows are read later (after a pipeline sync)."""
        prepared = self._prepare(statement)
        cursor = self._connection.cursor()
        cursor.execute(prepared.sql, prepared.parameters(values or {}))
        pending = Pending(cursor, prepared)
        if not self._pipelines:
            # Read now: SQLite cannot commit while a statement has rows unread.
            pending.fetch()
        return pending

    def one(self, statement: ClauseElement, values: Mapping[str, Any] | None = None) -> Row | None:
        return self.submit(statement, values).one()

    def all(self, statement: ClauseElement, values: Mapping[str, Any] | None = None) -> list[Row]:
        return self.submit(statement, values).all()

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """Send what is submitted inside together (PostgreSQL); elsewhere, no change."""
        if not self._pipelines:
            yield
            return
        with self._connection.pipeline():
            yield


class Pending:
    """The rows of a submitted statement, read on first use."""

    __slots__ = ("_cursor", "_prepared", "_rows")

    def __init__(self, cursor: Any, prepared: Prepared) -> None:
        self._cursor = cursor
        self._prepared = prepared
        self._rows: list[Any] | None = None

    def fetch(self) -> list[Any]:
        if self._rows is None:
            try:
                self._rows = list(self._cursor.fetchall())
            finally:
                self._cursor.close()
        return self._rows

    def one(self) -> Row | None:
        rows = self.fetch()
        return self._prepared.row(rows[0]) if rows else None

    def all(self) -> list[Row]:
        return [self._prepared.row(values) for values in self.fetch()]
