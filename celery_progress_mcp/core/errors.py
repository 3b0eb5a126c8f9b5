"""The package's exceptions.

Every error the package raises on purpose derives from :class:`ProgressError`::

    ProgressError
    ├── SessionNotFound            (also a LookupError)
    ├── SubOperationNotFound       (also a LookupError)
    ├── InvalidTransition
    ├── InvalidProgress            (also a ValueError)
    │   └── ConfigError
    ├── CapacityExceeded
    ├── TrackingDisabled
    └── StoreUnavailable

Foreign errors (SQLAlchemy, kombu, pydantic) are mapped to these at the
boundary, so callers catch one hierarchy.
"""

from __future__ import annotations

__all__ = [
    "CapacityExceeded",
    "ConfigError",
    "InvalidProgress",
    "InvalidTransition",
    "ProgressError",
    "SessionNotFound",
    "StoreUnavailable",
    "SubOperationNotFound",
    "TrackingDisabled",
]


class ProgressError(Exception):
    """Base class of every error raised by celery-progress-mcp."""


class SessionNotFound(ProgressError, LookupError):
    """No session has the given id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"progress session not found: {session_id!r}")
        self.session_id = session_id


class SubOperationNotFound(ProgressError, LookupError):
    """The session has no sub-operation with the given id."""

    def __init__(self, session_id: str, sub_operation_id: str) -> None:
        super().__init__(f"sub-operation {sub_operation_id!r} not found in session {session_id!r}")
        self.session_id = session_id
        self.sub_operation_id = sub_operation_id


class InvalidTransition(ProgressError):
    """The requested change is not allowed from the current state."""


class InvalidProgress(ProgressError, ValueError):
    """A value given to the tracker is malformed (metadata, ids, sizes)."""


class ConfigError(InvalidProgress):
    """A configuration value is invalid; the message names the field and its source."""


class CapacityExceeded(ProgressError):
    """``max_concurrent_sessions`` active sessions already exist."""


class TrackingDisabled(ProgressError):
    """Raised only where a result is required and tracking is switched off."""


class StoreUnavailable(ProgressError):
    """The store cannot be reached; writes are buffered until it returns."""
