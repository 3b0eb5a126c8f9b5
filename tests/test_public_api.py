"""The public surface: ``celery_progress_mcp.__all__`` is sorted, complete and resolves."""

from __future__ import annotations

import celery_progress_mcp

#: Every public name of DESIGN.md "Public names".
DESIGN_NAMES = {
    # Celery
    "install",
    "ProgressTask",
    "progress_task",
    "TaskCancelled",
    # configuration
    "ProgressConfig",
    "ProgressGranularity",
    # states
    "ProgressState",
    "Initializing",
    "InProgress",
    "Paused",
    "Completed",
    "Failed",
    "Cancelled",
    # sessions
    "ProgressSession",
    "ProgressSnapshot",
    "SubOperation",
    "SubOperationState",
    "SubOperationUpdate",
    # events and statistics
    "ProgressEvent",
    "ProgressEventType",
    "ProgressStats",
    # the engine
    "ProgressTracker",
    "AsyncProgressTracker",
    # errors
    "ProgressError",
    "SessionNotFound",
    "SubOperationNotFound",
    "InvalidTransition",
    "InvalidProgress",
    "CapacityExceeded",
    "TrackingDisabled",
}
ERROR_NAMES = {
    "SessionNotFound",
    "SubOperationNotFound",
    "InvalidTransition",
    "InvalidProgress",
    "CapacityExceeded",
    "TrackingDisabled",
}


def test_all_is_sorted() -> None:
    assert list(celery_progress_mcp.__all__) == sorted(celery_progress_mcp.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(celery_progress_mcp.__all__)) == len(celery_progress_mcp.__all__)


def test_all_holds_every_public_name_of_the_design() -> None:
    missing = DESIGN_NAMES - set(celery_progress_mcp.__all__)
    assert not missing, f"public names missing from __all__: {sorted(missing)}"


def test_every_name_in_all_resolves() -> None:
    unresolved = [n for n in celery_progress_mcp.__all__ if not hasattr(celery_progress_mcp, n)]
    assert not unresolved


def test_every_public_attribute_is_in_all() -> None:
    """Nothing public is importable from the package root without being listed."""
    public = {
        name
        for name, value in vars(celery_progress_mcp).items()
        if not name.startswith("_") and not isinstance(value, type(celery_progress_mcp))
    }
    assert public - set(celery_progress_mcp.__all__) == set()


def test_errors_derive_from_progress_error() -> None:
    for name in ERROR_NAMES:
        assert issubclass(getattr(celery_progress_mcp, name), celery_progress_mcp.ProgressError)
    assert issubclass(celery_progress_mcp.InvalidProgress, ValueError)


def test_py_typed_is_shipped() -> None:
    from importlib.resources import files

    assert files("celery_progress_mcp").joinpath("py.typed").is_file()


def test_version_is_exported_and_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert "__version__" in celery_progress_mcp.__all__
    assert celery_progress_mcp.__version__ == version("celery-progress-mcp")
