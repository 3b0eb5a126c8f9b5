"""Jinja filters: how the pages write numbers, times and events (static/dashboard.js mirrors them).

Each returns plain text, which the template then escapes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..core.durations import duration_text
from ..core.models import ProgressEvent

__all__ = ["FILTERS", "event_text"]


def percent_text(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def rate_text(value: float) -> str:
    return f"{100 * value:.1f}%"


def time_text(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def step_text(step: str | None, number: int | None, total: int | None) -> str:
    counter = ""
    if number is not None and total:
        counter = f"{number}/{total}"
    elif number is not None:
        counter = str(number)
    if step and counter:
        return f"{step} ({counter})"
    return step or counter


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def path_segment(value: str) -> str:
    """A session id as one URL path segment (``/`` and ``?`` encoded too)."""
    return quote(value, safe="")


def status_text(value: str) -> str:
    return value.replace("_", " ")


def event_text(event: ProgressEvent) -> str:
    """One line saying what an event changed."""
    data = event.data
    parts: list[str] = []
    if "sub_operation_id" in data:
        parts.append(f"sub-operation {data['sub_operation_id']}")
        if data.get("sub_operation_state"):
            parts.append(str(data["sub_operation_state"]))
        if isinstance(data.get("sub_operation_percentage"), int | float):
            parts.append(percent_text(float(data["sub_operation_percentage"])))
        if data.get("sub_operation_error"):
            parts.append(str(data["sub_operation_error"]))
        return " · ".join(parts)
    if data.get("status"):
        parts.append(status_text(str(data["status"])))
    if isinstance(data.get("percentage"), int | float):
        parts.append(percent_text(float(data["percentage"])))
    step = step_text(
        data.get("current_step"), data.get("current_step_number"), data.get("total_steps")
    )
    if step:
        parts.append(step)
    for key in ("error_message", "reason", "result_summary"):
        if data.get(key):
            parts.append(str(data[key]))
    return " · ".join(parts)


#: Registered on the dashboard's Jinja environment.
FILTERS = {
    "duration": duration_text,
    "event_text": event_text,
    "path_segment": path_segment,
    "percent": percent_text,
    "pretty_json": pretty_json,
    "rate": rate_text,
    "status_text": status_text,
    "step": step_text,
    "when": time_text,
}
