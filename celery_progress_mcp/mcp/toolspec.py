"""A Celery task seen as an MCP tool: its name, description and schemas.

The input schema comes from the task's signature and type hints (through a
pydantic model, so what the schema promises is what validation checks); the
description is the task's docstring. Arguments cross to the worker as JSON,
so validated values are dumped to JSON types before dispatch.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from ..core.errors import ConfigError, InvalidProgress

__all__ = [
    "TOOL_NAME_PATTERN",
    "InvalidToolArguments",
    "TaskTool",
    "structured_result",
    "tool_from_task",
    "tool_name_for",
    "validation_problems",
]

#: A valid MCP tool name (2025-11-25 server/tools: 1 to 128 of these characters).
TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
#: Characters replaced by ``_`` when a task name is turned into a tool name.
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class InvalidToolArguments(InvalidProgress):
    """The arguments of a tool call do not match the tool's input schema."""

    def __init__(self, tool: str, problems: list[str]) -> None:
        super().__init__(f"invalid arguments for tool {tool!r}: " + "; ".join(problems))
        self.tool = tool
        self.problems = problems


@dataclass(frozen=True)
class TaskTool:
    """One allowlisted Celery task, exposed as an MCP tool."""

    name: str
    task_name: str
    description: str
    input_schema: dict[str, Any]
    #: None where the task's return annotation says nothing usable.
    output_schema: dict[str, Any] | None
    #: Whether structured results are wrapped as ``{"result": value}``.
    wraps_result: bool
    arguments_model: type[BaseModel] = field(repr=False)
    #: Parameters the task takes positionally only.
    positional: tuple[str, ...] = ()

    def validate(self, arguments: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
        """Check ``arguments``; return JSON-ready ``(args, kwargs)`` for ``apply_async``."""
        try:
            model = self.arguments_model.model_validate(arguments or {})
        except ValidationError as exc:
            raise InvalidToolArguments(self.name, validation_problems(exc)) from None
        values = model.model_dump(mode="json", exclude_unset=True)
        values.update(model.model_extra or {})
        # Positional-only values go in order, with defaults filling the gaps
        # before the last one given.
        given = [i for i, name in enumerate(self.positional) if name in values]
        args: list[Any] = []
        if given:
            everything = model.model_dump(mode="json")
            args = [everything[name] for name in self.positional[: given[-1] + 1]]
            for name in self.positional:
                values.pop(name, None)
        return args, values


def validation_problems(error: ValidationError) -> list[str]:
    """One ``field: problem`` line per error, for an agent to read."""
    return [
        f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)
    ]


def tool_name_for(task_name: str) -> str:
    """A valid tool name for a Celery task name (``proj.tasks.add`` stays as it is)."""
    name = _INVALID_CHARS.sub("_", task_name)[:128]
    if not name:
        raise ConfigError(f"cannot make a tool name from task name {task_name!r}")
    return name


def tool_from_task(task: Any, *, name: str | None = None) -> TaskTool:
    """Describe the Celery ``task`` as a tool. ``name`` defaults to the task's name."""
    task = _unproxied(task)
    task_name: str = task.name
    tool_name = name if name is not None else tool_name_for(task_name)
    if not TOOL_NAME_PATTERN.match(tool_name):
        raise ConfigError(
            f"invalid tool name {tool_name!r} for task {task_name!r}: "
            "use 1 to 128 of A-Z a-z 0-9 _ - ."
        )
    function = task.run
    signature = inspect.signature(function)
    hints = _type_hints(function)
    fields: dict[str, Any] = {}
    positional: list[str] = []
    open_keywords = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue  # an MCP call has named arguments only
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            open_keywords = True
            continue
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(parameter.name)
    config = ConfigDict(extra="allow" if open_keywords else "forbid", arbitrary_types_allowed=True)
    model_name = (
        "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", tool_name)) or "Tool"
    )
    try:
        arguments_model = create_model(f"{model_name}Arguments", __config__=config, **fields)
        input_schema = arguments_model.model_json_schema()
    except Exception as exc:  # pydantic raises several types for unusable annotations
        raise ConfigError(f"task {task_name!r}: cannot build an input schema: {exc}") from exc
    input_schema.pop("title", None)
    input_schema.setdefault("type", "object")
    input_schema.setdefault("properties", {})
    output_schema, wraps = _output_schema(hints.get("return", inspect.Signature.empty))
    return TaskTool(
        name=tool_name,
        task_name=task_name,
        description=_description(task, function),
        input_schema=input_schema,
        output_schema=output_schema,
        wraps_result=wraps,
        arguments_model=arguments_model,
        positional=tuple(positional),
    )


def structured_result(tool: TaskTool, value: Any) -> dict[str, Any] | None:
    """The ``structuredContent`` for a task's return value, or None.

    With an output schema the shape follows it; without one a JSON object
    is passed as it is and anything else gives no structured content.
    """
    if tool.output_schema is not None:
        return {"result": value} if tool.wraps_result else _as_object(value)
    return _as_object(value)


def _as_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            return None
        return value
    return None


def _type_hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:
        # Unresolvable forward references: fall back to what is written.
        return {
            name: annotation
            for name, annotation in getattr(function, "__annotations__", {}).items()
            if not isinstance(annotation, str)
        }


def _output_schema(annotation: Any) -> tuple[dict[str, Any] | None, bool]:
    if annotation is inspect.Signature.empty or annotation is Any or annotation is None:
        return None, False
    if annotation is type(None):
        return None, False
    try:
        schema = TypeAdapter(annotation).json_schema()
    except Exception:
        return None, False
    if schema.get("type") == "object":
        return schema, False
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": {k: v for k, v in schema.items() if k != "$defs"}},
        "required": ["result"],
    }
    if "$defs" in schema:
        wrapped["$defs"] = schema["$defs"]
    return wrapped, True


def _unproxied(task: Any) -> Any:
    """The task itself where ``@app.task`` handed out a lazy proxy."""
    evaluate = getattr(task, "_get_current_object", None)
    return evaluate() if callable(evaluate) else task


def _description(task: Any, function: Any) -> str:
    doc = inspect.getdoc(function) or (inspect.getdoc(task) if type(task).__doc__ else None)
    if doc:
        return doc
    return f"Runs the Celery task {task.name}."
