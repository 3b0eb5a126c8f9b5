"""The seed's tests and examples (MagicTunnel's progress tracker), ported to Python.

Each scenario runs against ``ProgressTracker`` and ``AsyncProgressTracker``
(the ``make_api`` fixture is parametrised over both). Behaviour is ported,
not code; where MagicTunnel accepted something wrong (completing a session
twice) the port asserts the fix.
"""

from __future__ import annotations

import itertools

import pytest

from celery_progress_mcp import (
    Completed,
    Failed,
    Initializing,
    InProgress,
    InvalidTransition,
    ProgressEventType,
    ProgressGranularity,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)
from celery_progress_mcp.testing import FakeClock

from .api import Api, ApiFactory, run

E = ProgressEventType


# -- the seed's unit tests (src/mcp/progress.rs) ------------------------------------


def test_session_creation(make_api: ApiFactory) -> None:
    async def scenario(api: Api) -> None:
        session_id = await api.create_session("test_operation", {})
        assert session_id
        session = await api.get_session(session_id)
        assert session.operation_id == "test_operation"
        assert isinstance(session.state, Initializing)

    run(scenario(make_api()))


def test_progress_update(make_api: ApiFactory) -> None:
    async def scenario(api: Api) -> None:
        session_id = await api.create_session("test_operation", {})
        state = InProgress(
            percentage=50.0,
            current_step="Processing data",
            total_steps=10,
            current_step_number=5,
            eta_seconds=60,
        )
        await api.update_progress(session_id, state, [], {})
        session = await api.get_session(session_id)
        assert session.state == state
        assert session.percentage == 50.0

    run(scenario(make_api()))


def test_session_completion(make_api: ApiFactory) -> None:
    async def scenario(api: Api) -> None:
        session_id = await api.create_session("test_operation", {})
        await api.complete_session(session_id, "Operation completed successfully")
        session = await api.get_session(session_id)
        assert isinstance(session.state, Completed)
        assert session.state.result_summary == "Operation completed successfully"

    run(scenario(make_api()))


def test_sub_operations(make_api: ApiFactory) -> None:
    async def scenario(api: Api) -> None:
        session_id = await api.create_session("test_operation", {})
        await api.add_sub_operations(session_id, [SubOperation(id="sub1", name="Sub-operation 1")])
        await api.start_sub_operation(session_id, "sub1")
        await api.complete_sub_operation(session_id, "sub1", {})
        session = await api.get_session(session_id)
        assert len(session.sub_operations) == 1
        assert session.sub_operations[0].state is SubOperationState.COMPLETED

    run(scenario(make_api()))


def test_event_subscription(make_api: ApiFactory) -> None:
    async def scenario(api: Api) -> None:
        reader = api.subscribe()
        session_id = await api.create_session("test_operation", {})
        event = await reader.next(timeout=5)
        assert event is not None
        assert event.session_id == session_id
        assert event.event_type is E.SESSION_CREATED
        reader.close()

    run(scenario(make_api()))


# -- the seed's documented test ------------------------------------------------------


def test_progress_session_lifecycle(make_api: ApiFactory) -> None:
    async def scenario(api: Api) -> None:
        session_id = await api.create_session("test_operation", {})
        await api.update_progress(
            session_id,
            InProgress(
                percentage=50.0,
                current_step="Halfway done",
                total_steps=2,
                current_step_number=1,
                eta_seconds=60,
            ),
            [],
            {},
        )
        await api.complete_session(session_id, "Test completed")
        session = await api.get_session(session_id)
        assert isinstance(session.state, Completed)
        assert session.state.result_summary == "Test completed"
        statuses = [snap.state.status for snap in session.history]
        assert statuses == ["initializing", "in_progress", "completed"]

    run(scenario(make_api()))


# -- the seed's examples ---------------------------------------------------------------


def test_file_processing_example(make_api: ApiFactory) -> None:
    """The seed's ``process_large_file``: an update every 100 lines, then complete.

    With the default window nothing advances the clock, so the updates are
    coalesced; completing writes the latest one first, so nothing is lost.
    """
    total_lines = 1050

    async def scenario(api: Api) -> None:
        reader = api.subscribe()
        session_id = await api.create_session(
            "file_processing",
            {"file_path": "/data/large_dataset.csv", "operation_type": "batch_processing"},
        )
        for processed in range(100, total_lines + 1, 100):
            await api.update_progress(
                session_id,
                InProgress(
                    percentage=processed / total_lines * 100,
                    current_step=f"Processing line {processed}",
                    total_steps=total_lines,
                    current_step_number=processed,
                    eta_seconds=(total_lines - processed) / 500,
                ),
                [],
                {"lines_processed": processed, "lines_per_second": 500.0},
            )
            live = await api.get_session(session_id)
            assert live.state.current_step_number == processed
        await api.complete_session(session_id, f"Processed {total_lines} lines successfully")

        session = await api.get_session(session_id)
        assert isinstance(session.state, Completed)
        assert session.state.result_summary == "Processed 1050 lines successfully"
        assert session.percentage == 100.0
        # update_progress merges its metadata into the session's.
        assert session.metadata == {
            "file_path": "/data/large_dataset.csv",
            "operation_type": "batch_processing",
            "lines_processed": 1000,
            "lines_per_second": 500.0,
        }
        in_progress = [snap for snap in session.history if snap.state.status == "in_progress"]
        assert in_progress[-1].state.current_step_number == 1000
        assert in_progress[-1].metadata["lines_processed"] == 1000

        events = []
        while (event := await reader.next(timeout=0)) is not None:
            events.append(event)
        assert [e.seq for e in events] == sorted({e.seq for e in events})
        assert events[0].event_type is E.SESSION_CREATED
        assert events[-1].event_type is E.SESSION_COMPLETED
        updates = [e for e in events if e.event_type is E.PROGRESS_UPDATED]
        assert updates[-1].data["current_step_number"] == 1000
        reader.close()

    run(scenario(make_api()))


def test_simple_progress_example(make_api: ApiFactory) -> None:
    """The seed's example 1: ten updates, the last a Completed state, then complete_session.

    MagicTunnel let a completed session be completed again; here terminal
    states are final, so the second completion is refused and changes nothing.
    """
    clock = FakeClock()

    async def scenario(api: Api) -> None:
        session_id = await api.create_session(
            "file_processing",
            {"file_name": "large_dataset.csv", "file_size": 1024000, "operation_type": "csv"},
        )
        for i in range(11):
            if i == 10:
                state: InProgress | Completed = Completed(
                    completed_at=clock.now(),
                    result_summary="File processed successfully",
                    duration_seconds=5,
                )
            else:
                state = InProgress(
                    percentage=i * 10.0,
                    current_step=f"Processing row {i * 1000}",
                    total_steps=10,
                    current_step_number=i,
                    eta_seconds=10 - i,
                )
            await api.update_progress(
                session_id,
                state,
                [],
                {"rows_processed": i * 1000, "current_memory_usage": 45.5 + i * 2.3},
            )
            clock.advance(0.2)
        before = await api.get_session(session_id)
        with pytest.raises(InvalidTransition, match="terminal"):
            await api.complete_session(session_id, "CSV analysis completed successfully")
        after = await api.get_session(session_id)
        assert after == before
        assert isinstance(after.state, Completed)
        assert after.state.result_summary == "File processed successfully"
        assert after.metadata["rows_processed"] == 10000
        stats = await api.get_stats()
        assert (stats.total_completed, stats.active_sessions) == (1, 0)

    run(scenario(make_api(clock=clock)))


ML_STAGES = [
    ("data_loading", "Loading training data"),
    ("preprocessing", "Preprocessing data"),
    ("training", "Training model"),
    ("validation", "Validating model"),
    ("saving", "Saving model"),
]


def test_ml_pipeline_example(make_api: ApiFactory) -> None:
    """The seed's multi-stage pipeline: five sub-operations run in turn."""
    clock = FakeClock()

    async def scenario(api: Api) -> None:
        reader = api.subscribe()
        session_id = await api.create_session(
            "ml_training", {"model_type": "transformer", "dataset_size": 50000, "epochs": 100}
        )
        await api.add_sub_operations(
            session_id, [SubOperation(id=stage, name=name) for stage, name in ML_STAGES]
        )
        for index, (stage, name) in enumerate(ML_STAGES):
            await api.start_sub_operation(session_id, stage)
            for batch in range(1, 5):
                await api.update_progress(
                    session_id,
                    InProgress(
                        percentage=(index + batch / 5) / len(ML_STAGES) * 100,
                        current_step=f"Executing {name}",
                        total_steps=len(ML_STAGES),
                        current_step_number=index + 1,
                    ),
                    [
                        SubOperationUpdate(
                            id=stage,
                            state=SubOperationState.ACTIVE,
                            percentage=batch * 20.0,
                            metadata={"current_batch": batch},
                        )
                    ],
                    {},
                )
                clock.advance(0.3)
            await api.complete_sub_operation(
                session_id, stage, {"stage": name, "completed_at": clock.now().isoformat()}
            )
            await api.update_progress(
                session_id,
                InProgress(
                    percentage=(index + 1) / len(ML_STAGES) * 100,
                    current_step=f"Completed {name}",
                    total_steps=len(ML_STAGES),
                    current_step_number=index + 1,
                ),
                [],
                {},
            )
            running = await api.get_session(session_id)
            assert running.percentage == pytest.approx((index + 1) / len(ML_STAGES) * 100)
        await api.complete_session(session_id, "ML training pipeline completed successfully")

        session = await api.get_session(session_id)
        assert isinstance(session.state, Completed)
        for sub, (stage, name) in zip(session.sub_operations, ML_STAGES, strict=True):
            assert sub.id == stage
            assert sub.state is SubOperationState.COMPLETED
            assert sub.percentage == 100.0
            assert sub.started_at is not None
            assert sub.ended_at is not None
            assert sub.started_at <= sub.ended_at
            assert sub.metadata["current_batch"] == 4
            assert sub.metadata["stage"] == name
        events = []
        while (event := await reader.next(timeout=0)) is not None:
            events.append(event)
        # Verbose granularity: sub-operation events, each naming its sub-operation.
        completed = [e for e in events if e.event_type is E.SUB_OPERATION_COMPLETED]
        assert [e.data["sub_operation_id"] for e in completed] == [s for s, _ in ML_STAGES]
        started = [e for e in events if e.event_type is E.SUB_OPERATION_STARTED]
        assert [e.data["sub_operation_id"] for e in started] == [s for s, _ in ML_STAGES]
        assert all(a.seq < b.seq for a, b in itertools.pairwise(events))
        reader.close()

    run(scenario(make_api(clock=clock, granularity_level=ProgressGranularity.VERBOSE)))


def test_detailed_example_rolls_up_weighted_sub_operations(make_api: ApiFactory) -> None:
    """The seed's example 2, letting the sub-operations carry the percentage."""

    async def scenario(api: Api) -> None:
        session_id = await api.create_session("data_pipeline", {"dataset_size": 50000})
        await api.add_sub_operations(
            session_id,
            [
                SubOperation(id="data_loading", name="Data Loading", weight=1),
                SubOperation(id="data_preprocessing", name="Data Preprocessing", weight=1),
                SubOperation(id="model_training", name="Model Training", weight=2),
            ],
        )
        await api.start_sub_operation(session_id, "data_loading")
        await api.complete_sub_operation(session_id, "data_loading", {"records": 50000})
        await api.start_sub_operation(session_id, "data_preprocessing")
        await api.update_progress(
            session_id,
            InProgress(current_step="Executing data preprocessing"),
            [SubOperationUpdate(id="data_preprocessing", percentage=50.0)],
        )
        session = await api.get_session(session_id)
        # (1 * 100 + 1 * 50 + 2 * 0) / 4
        assert session.percentage == pytest.approx(37.5)

    run(scenario(make_api(update_interval_ms=0)))


@pytest.mark.parametrize("succeeds_on", [1, 2, None])
def test_retry_example(make_api: ApiFactory, succeeds_on: int | None) -> None:
    """The seed's ``resilient_operation``: up to three attempts, progress per retry."""

    async def scenario(api: Api) -> None:
        session_id = await api.create_session("resilient_operation", {})
        for attempt in range(1, 4):
            if attempt == succeeds_on:
                await api.update_progress(
                    session_id,
                    InProgress(percentage=100.0, current_step="Operation succeeded"),
                    [],
                    {"attempt": attempt, "result": "success"},
                )
                await api.complete_session(session_id, None)
                break
            error = f"connection reset (attempt {attempt})"
            if attempt < 3:
                await api.update_progress(
                    session_id,
                    InProgress(
                        percentage=attempt / 3 * 100,
                        current_step=f"Retry attempt {attempt} failed, retrying...",
                        total_steps=3,
                        current_step_number=attempt,
                        eta_seconds=30,
                    ),
                    [],
                    {"attempt": attempt, "error": error},
                )
            else:
                await api.fail_session(
                    session_id,
                    f"Operation failed after {attempt} attempts: {error}",
                    "MAX_RETRIES_EXCEEDED",
                )

        session = await api.get_session(session_id)
        stats = await api.get_stats()
        if succeeds_on is None:
            assert isinstance(session.state, Failed)
            assert session.state.error_code == "MAX_RETRIES_EXCEEDED"
            assert session.state.error_message.startswith("Operation failed after 3 attempts")
            assert session.state.failed_at_percentage == pytest.approx(200 / 3)
            assert session.metadata == {"attempt": 2, "error": "connection reset (attempt 2)"}
            assert (stats.total_failed, stats.total_completed) == (1, 0)
        else:
            assert isinstance(session.state, Completed)
            assert session.metadata["attempt"] == succeeds_on
            assert session.metadata["result"] == "success"
            assert (stats.total_failed, stats.total_completed) == (0, 1)

    run(scenario(make_api()))


def test_failure_example(make_api: ApiFactory) -> None:
    """The seed's example 3: four batches synced, then a network failure."""
    clock = FakeClock()

    async def scenario(api: Api) -> None:
        session_id = await api.create_session(
            "failing_operation", {"operation_type": "network_sync", "sync_size": 1000000}
        )
        for i in range(4):
            await api.update_progress(
                session_id,
                InProgress(
                    percentage=i * 10.0,
                    current_step=f"Syncing batch {i + 1}",
                    total_steps=10,
                    current_step_number=i + 1,
                    eta_seconds=(10 - i) * 5,
                ),
                [],
                {"bytes_synced": i * 100000, "network_latency": 50 + i * 10},
            )
            clock.advance(0.2)
        await api.fail_session(
            session_id, "Network connection timeout after 3 retries", "NETWORK_TIMEOUT"
        )
        session = await api.get_session(session_id)
        assert isinstance(session.state, Failed)
        assert session.state.error_code == "NETWORK_TIMEOUT"
        assert session.state.failed_at_percentage == 30.0
        assert session.metadata["bytes_synced"] == 300000
        with pytest.raises(InvalidTransition):
            await api.update_progress(session_id, InProgress(percentage=50.0))
        stats = await api.get_stats()
        assert (stats.active_sessions, stats.total_failed) == (0, 1)

    run(scenario(make_api(clock=clock)))
