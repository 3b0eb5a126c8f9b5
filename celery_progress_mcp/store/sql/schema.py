"""The SQL store's tables, as SQLAlchemy Core metadata.

The Alembic migrations in ``store/migrations`` create exactly these tables;
``tests/store/test_migrations.py`` keeps the two in step.

* ``progress_sessions``: one row per session. The state is JSON text; the
  columns beside it (status, percentage, times, ids) exist to be filtered,
  sorted and counted with indexes.
* ``progress_sub_operations``: one row per sub-operation, so writers only
  touch the rows they change; ``position`` keeps their order.
* ``progress_snapshots``: a session's thinned history, keyed by timeline index.
* ``progress_events``: the append-only event log. ``seq`` is assigned from
  ``progress_sequence`` inside the writing transaction, never by an
  autoincrement, so sequence order is commit order.
* ``progress_counters``: lifetime totals, which outlive purged sessions, and
  the number of sessions now in each status; its single row is also the
  lock that serialises session creation and status changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import mysql, postgresql

from ...core.states import SessionStatus

__all__ = [
    "COUNTERS_ROW_ID",
    "MAX_ID_LENGTH",
    "SEQUENCE_ROW_ID",
    "VERSION_TABLE",
    "IdString",
    "JsonText",
    "SequenceNumber",
    "UtcDateTime",
    "counters",
    "events",
    "live_column",
    "metadata",
    "sequence",
    "sessions",
    "snapshots",
    "sub_operations",
]

#: Longest session, operation or sub-operation id the SQL store accepts.
MAX_ID_LENGTH = 255
#: Key of the single row of ``progress_counters``.
COUNTERS_ROW_ID = 1
#: Key of the single row of ``progress_sequence``.
SEQUENCE_ROW_ID = 1
#: Alembic's version table, named apart from an application's own.
VERSION_TABLE = "progress_alembic_version"

#: Status strings are short enum values ("in_progress").
_STATUS_LENGTH = 16
#: Event type names ("SubOperationCompleted").
_EVENT_TYPE_LENGTH = 32


def IdString() -> Any:
    """An id compared byte by byte, as Python compares strings.

    MySQL's default collation is case-insensitive (``"A" == "a"``) and
    PostgreSQL's follows the locale; either would break uniqueness or the
    order ``list_sessions`` promises. On MySQL/MariaDB the collation depends
    on the server (a binary one without PAD SPACE, so ``"a"`` and ``"a "``
    differ too), so the migration chooses it and this type leaves it out.
    """
    return String(MAX_ID_LENGTH).with_variant(
        postgresql.VARCHAR(MAX_ID_LENGTH, collation="C"), "postgresql"
    )


def JsonText() -> Any:
    """JSON held as text; MySQL's TEXT stops at 64 KiB, so LONGTEXT there."""
    return Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect.

    Stored without a zone (naive UTC) with microseconds, so values sort and
    compare the same way on SQLite, PostgreSQL and MySQL. A naive value
    given in is taken to be UTC.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # The text SQLAlchemy's SQLite DATETIME writes, made in C: a progress
        # update writes four of these.
        return _sqlite_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _sqlite_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def live_column(status: str) -> str:
    """The ``progress_counters`` column counting the sessions now in ``status``."""
    return f"now_{status}"


metadata = MetaData()

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mariadb_engine": "InnoDB",
}
#: SQLite: a composite primary key as the table's own b-tree, not a second index
#: beside a rowid table (one page less to write per commit).
_CLUSTERED: dict[str, Any] = {**_MYSQL, "sqlite_with_rowid": False}


def SequenceNumber() -> Any:
    """BIGINT; on SQLite INTEGER, which makes the key the rowid itself."""
    return BigInteger().with_variant(Integer(), "sqlite")


sessions = Table(
    "progress_sessions",
    metadata,
    Column("id", IdString(), primary_key=True),
    Column("operation_id", IdString(), nullable=False),
    Column("parent_id", IdString(), nullable=True),
    Column("status", String(_STATUS_LENGTH), nullable=False),
    Column("percentage", Double(), nullable=False),
    Column("state", JsonText(), nullable=False),
    Column("metadata", JsonText(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    #: The index the next snapshot gets: snapshots ever recorded.
    Column("snapshot_count", Integer(), nullable=False),
    #: A random token that every write replaces: a writer that cached the
    #: session at this revision can skip reading it again.
    Column("revision", BigInteger(), nullable=False),
    Index("ix_progress_sessions_status_created", "status", "created_at", "id"),
    # Each filter's index ends in (created_at, id): the order pages are read in.
    Index("ix_progress_sessions_operation_created", "operation_id", "created_at", "id"),
    Index("ix_progress_sessions_parent_created", "parent_id", "created_at", "id"),
    Index("ix_progress_sessions_created", "created_at", "id"),
    **_MYSQL,
)

sub_operations = Table(
    "progress_sub_operations",
    metadata,
    Column("session_id", IdString(), nullable=False),
    Column("id", IdString(), nullable=False),
    Column("position", Integer(), nullable=False),
    Column("name", Text(), nullable=False),
    Column("state", String(_STATUS_LENGTH), nullable=False),
    Column("percentage", Double(), nullable=False),
    Column("weight", Double(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("error", Text(), nullable=True),
    Column("metadata", JsonText(), nullable=False),
    PrimaryKeyConstraint("session_id", "id", name="pk_progress_sub_operations"),
    **_CLUSTERED,
)

snapshots = Table(
    "progress_snapshots",
    metadata,
    Column("session_id", IdString(), nullable=False),
    Column("idx", Integer(), nullable=False),
    Column("data", JsonText(), nullable=False),
    PrimaryKeyConstraint("session_id", "idx", name="pk_progress_snapshots"),
    **_CLUSTERED,
)

events = Table(
    "progress_events",
    metadata,
    Column("seq", SequenceNumber(), primary_key=True, autoincrement=False),
    Column("session_id", IdString(), nullable=False),
    Column("operation_id", IdString(), nullable=False),
    Column("event_type", String(_EVENT_TYPE_LENGTH), nullable=False),
    Column("timestamp", UtcDateTime(), nullable=False),
    Column("data", JsonText(), nullable=False),
    # No index on timestamp: retention deletes from the low end of seq.
    Index("ix_progress_events_session_seq", "session_id", "seq"),
    **_MYSQL,
)

sequence = Table(
    "progress_sequence",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    #: The last event sequence number handed out (and committed).
    Column("value", BigInteger(), nullable=False),
    **_MYSQL,
)

counters = Table(
    "progress_counters",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("created", BigInteger(), nullable=False),
    Column("completed", BigInteger(), nullable=False),
    Column("failed", BigInteger(), nullable=False),
    Column("cancelled", BigInteger(), nullable=False),
    Column("completed_duration_s", Double(), nullable=False),
    # Sessions in the store now, by status: kept in the same transactions
    # that change a status, so stats and the capacity check read one row.
    *(Column(live_column(status), BigInteger(), nullable=False) for status in SessionStatus),
    **_MYSQL,
)
