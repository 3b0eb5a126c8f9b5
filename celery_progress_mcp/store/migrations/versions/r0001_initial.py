"""The initial schema: sessions, sub-operations, snapshots, events, sequence, counters.

Revision ID: 0001_initial
Revises:
Created: 2026-11-28

Types are spelled out here rather than imported from ``schema.py``, so this
revision keeps creating what it created even when ``schema.py`` moves on.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mariadb_engine": "InnoDB",
}
_CLUSTERED: dict[str, Any] = {**_MYSQL, "sqlite_with_rowid": False}
#: Session statuses as of this revision (one live-count column each).
_STATUSES = ("initializing", "in_progress", "paused", "completed", "failed", "cancelled")


def _mysql_id_collation() -> str:
    """Byte-wise and without PAD SPACE, so that ``"a"`` and ``"a "`` are two ids."""
    dialect = op.get_bind().dialect
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    version = getattr(dialect, "server_version_info", None) or (0,)
    return "utf8mb4_0900_bin" if version >= (8,) else "utf8mb4_bin"


def _id() -> Any:
    return (
        sa.String(255)
        .with_variant(postgresql.VARCHAR(255, collation="C"), "postgresql")
        .with_variant(
            mysql.VARCHAR(255, charset="utf8mb4", collation=_mysql_id_collation()),
            "mysql",
            "mariadb",
        )
    )


def _json() -> Any:
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _time() -> Any:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "progress_sessions",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("operation_id", _id(), nullable=False),
        sa.Column("parent_id", _id(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("percentage", sa.Double(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("heartbeat_at", _time(), nullable=True),
        sa.Column("snapshot_count", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        **_MYSQL,
    )
    op.create_index(
        "ix_progress_sessions_status_created",
        "progress_sessions",
        ["status", "created_at", "id"],
    )
    op.create_index(
        "ix_progress_sessions_operation_created",
        "progress_sessions",
        ["operation_id", "created_at", "id"],
    )
    op.create_index(
        "ix_progress_sessions_parent_created",
        "progress_sessions",
        ["parent_id", "created_at", "id"],
    )
    op.create_index("ix_progress_sessions_created", "progress_sessions", ["created_at", "id"])
    op.create_table(
        "progress_sub_operations",
        sa.Column("session_id", _id(), nullable=False),
        sa.Column("id", _id(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("percentage", sa.Double(), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.Column("started_at", _time(), nullable=True),
        sa.Column("ended_at", _time(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "id", name="pk_progress_sub_operations"),
        **_CLUSTERED,
    )
    op.create_table(
        "progress_snapshots",
        sa.Column("session_id", _id(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "idx", name="pk_progress_snapshots"),
        **_CLUSTERED,
    )
    op.create_table(
        "progress_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("session_id", _id(), nullable=False),
        sa.Column("operation_id", _id(), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("timestamp", _time(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        **_MYSQL,
    )
    op.create_index("ix_progress_events_session_seq", "progress_events", ["session_id", "seq"])
    sequence = op.create_table(
        "progress_sequence",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        **_MYSQL,
    )
    counters = op.create_table(
        "progress_counters",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("completed", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("cancelled", sa.BigInteger(), nullable=False),
        sa.Column("completed_duration_s", sa.Double(), nullable=False),
        *(sa.Column(f"now_{status}", sa.BigInteger(), nullable=False) for status in _STATUSES),
        **_MYSQL,
    )
    assert sequence is not None
    assert counters is not None
    op.bulk_insert(sequence, [{"id": 1, "value": 0}])
    op.bulk_insert(
        counters,
        [
            {
                "id": 1,
                "created": 0,
                "completed": 0,
                "failed": 0,
                "cancelled": 0,
                "completed_duration_s": 0.0,
                **{f"now_{status}": 0 for status in _STATUSES},
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "progress_counters",
        "progress_sequence",
        "progress_events",
        "progress_snapshots",
        "progress_sub_operations",
        "progress_sessions",
    ):
        op.drop_table(table)
