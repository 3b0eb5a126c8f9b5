"""Which database errors mean "try again" and which mean "the store is gone".

* Contention (SQLite busy, a deadlock or lock timeout on a server): the
  transaction wrote nothing, and running it again will succeed; the store
  retries it, so these never reach the caller.
* Unavailability (the server cannot be reached, the connection dropped,
  the server is shutting down or out of resources, the pool is exhausted,
  the database file cannot be opened or written): mapped to
  ``StoreUnavailable``, which the tracker buffers.
* Anything else (a syntax error, a missing table, bad data) is a bug, not
  an outage, and propagates unchanged: buffering it would hide it.

Drivers file very different errors under ``OperationalError`` (SQLite a
syntax error, PyMySQL an unknown column), so the decision looks at the
SQLSTATE, the MySQL error number or the SQLite message.
"""

from __future__ import annotations

from enum import Enum

from sqlalchemy import exc as sa_exc

__all__ = ["Failure", "classify"]

#: SQLSTATEs of a lost race, after which nothing was written: deadlock,
#: serialization failure, lock not available.
_PG_CONTENTION = frozenset({"40P01", "40001", "55P03"})
#: SQLSTATE classes of an outage: connection exception, insufficient
#: resources, operator intervention (shutdown, cancel), system error.
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
#: MySQL error numbers of a lost race: deadlock found, lock wait timeout.
_MYSQL_CONTENTION = frozenset({1213, 1205})
#: MySQL error numbers of an outage: too many connections, server shutdown,
#: connection killed, can't connect, server gone away, lost connection.
_MYSQL_UNAVAILABLE = frozenset(
    {1040, 1053, 1077, 1152, 1927, 2002, 2003, 2005, 2006, 2013, 2026, 2055}
)
_SQLITE_CONTENTION = ("database is locked", "database table is locked", "busy")
_SQLITE_UNAVAILABLE = (
    "unable to open",
    "disk i/o error",
    "disk is full",
    "readonly database",
    "read-only",
    "database disk image is malformed",
    "not a database",
)


class Failure(Enum):
    CONTENTION = "contention"
    UNAVAILABLE = "unavailable"
    OTHER = "other"


def classify(error: BaseException) -> Failure:
    if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return Failure.UNAVAILABLE
    if not isinstance(error, sa_exc.DBAPIError):
        return Failure.OTHER
    if error.connection_invalidated:
        return Failure.UNAVAILABLE
    original = error.orig
    module = type(original).__module__
    if module.startswith("sqlite3"):
        return _classify_sqlite(str(original).lower())
    sqlstate = getattr(original, "sqlstate", None)
    if module.startswith("psycopg"):
        return _classify_postgres(error, sqlstate)
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int):
        return _classify_mysql(error, args[0])
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return Failure.UNAVAILABLE
    return Failure.OTHER


def _classify_sqlite(message: str) -> Failure:
    if any(words in message for words in _SQLITE_CONTENTION):
        return Failure.CONTENTION
    if any(words in message for words in _SQLITE_UNAVAILABLE):
        return Failure.UNAVAILABLE
    return Failure.OTHER


def _classify_postgres(error: sa_exc.DBAPIError, sqlstate: str | None) -> Failure:
    if sqlstate in _PG_CONTENTION:
        return Failure.CONTENTION
    if sqlstate is None:
        # No server answer at all: the connection could not be made or was lost.
        if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return Failure.UNAVAILABLE
        return Failure.OTHER
    if sqlstate.startswith(_PG_UNAVAILABLE_CLASSES):
        return Failure.UNAVAILABLE
    return Failure.OTHER


def _classify_mysql(error: sa_exc.DBAPIError, number: int) -> Failure:
    if number in _MYSQL_CONTENTION:
        return Failure.CONTENTION
    if number in _MYSQL_UNAVAILABLE:
        return Failure.UNAVAILABLE
    if number == 0 and isinstance(error, sa_exc.InterfaceError):
        return Failure.UNAVAILABLE  # PyMySQL's "connection already closed"
    return Failure.OTHER
