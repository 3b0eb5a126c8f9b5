"""Tools from Celery tasks: names, descriptions, schemas, argument checks."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from pydantic import BaseModel

from celery_progress_mcp.core.errors import ConfigError
from celery_progress_mcp.mcp.toolspec import (
    InvalidToolArguments,
    structured_result,
    tool_from_task,
    tool_name_for,
)

app = Celery("spec", set_as_current=False)


class Totals(BaseModel):
    rows: int
    bytes: int


@app.task(bind=True, name="proj.tasks.import_csv", shared=False)
def import_csv(self: Any, path: str, limit: int | None = None, *, dry_run: bool = False) -> Totals:
    """Import a CSV file.

    Reports progress by batches of lines.
    """
    return Totals(rows=0, bytes=0)


@app.task(name="proj.add", shared=False)
def add(a: int, b: int = 2, /) -> int:
    return a + b


@app.task(name="proj tasks: free form!", shared=False)
def free(x, **options):  # type: ignore[no-untyped-def]
    return x


def test_the_schema_comes_from_the_signature_and_the_description_from_the_docstring() -> None:
    tool = tool_from_task(import_csv)
    assert tool.name == "proj.tasks.import_csv"
    assert tool.description.startswith("Import a CSV file.")
    schema = tool.input_schema
    assert schema["type"] == "object"
    assert schema["required"] == ["path"]
    assert set(schema["properties"]) == {"path", "limit", "dry_run"}
    assert schema["additionalProperties"] is False
    assert tool.output_schema is not None
    assert set(tool.output_schema["properties"]) == {"rows", "bytes"}
    assert not tool.wraps_result


def test_a_scalar_result_is_wrapped_and_a_task_without_docstring_is_described() -> None:
    tool = tool_from_task(add)
    assert tool.output_schema == {
        "type": "object",
        "properties": {"result": {"type": "integer"}},
        "required": ["result"],
    }
    assert structured_result(tool, 5) == {"result": 5}
    assert tool.description == "Runs the Celery task proj.add."


def test_task_names_become_valid_tool_names() -> None:
    assert tool_name_for("proj tasks: free form!") == "proj_tasks__free_form_"
    assert tool_from_task(free).name == "proj_tasks__free_form_"
    with pytest.raises(ConfigError):
        tool_from_task(add, name="has space")


def test_arguments_are_checked_and_made_ready_for_celery() -> None:
    tool = tool_from_task(import_csv)
    assert tool.validate({"path": "a.csv"}) == ([], {"path": "a.csv"})
    assert tool.validate({"path": "a.csv", "limit": "5", "dry_run": True}) == (
        [],
        {"path": "a.csv", "limit": 5, "dry_run": True},
    )
    with pytest.raises(InvalidToolArguments) as caught:
        tool.validate({"limit": "many", "colour": "red"})
    assert len(caught.value.problems) == 3  # path missing, limit not an int, colour unknown


def test_positional_only_parameters_go_positionally_in_order() -> None:
    tool = tool_from_task(add)
    assert tool.validate({"a": 1}) == ([1], {})
    assert tool.validate({"b": 5, "a": 1}) == ([1, 5], {})


def test_keyword_catch_alls_accept_extra_arguments() -> None:
    tool = tool_from_task(free)
    assert tool.input_schema["additionalProperties"] is True
    assert tool.validate({"x": 1, "speed": "fast"}) == ([], {"x": 1, "speed": "fast"})
    assert structured_result(tool, {"a": 1}) == {"a": 1}
    assert structured_result(tool, [1, 2]) is None
