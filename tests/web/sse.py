"""A small Server-Sent Events reader over httpx, for the live tests and the benchmark."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Frame", "frames", "read_until"]


@dataclass(frozen=True)
class Frame:
    event: str
    data: Any
    id: str | None


def frames(response: httpx.Response) -> Iterator[Frame]:
    """Frames as they arrive; comments (heartbeats) skipped."""
    event, data, frame_id = "message", "", None
    for line in response.iter_lines():
        if not line:
            if data:
                yield Frame(event, json.loads(data), frame_id)
            event, data, frame_id = "message", "", None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data += value
            elif field == "id":
                frame_id = value


def read_until(stream: Iterator[Frame], done: Callable[[list[Frame]], bool]) -> list[Frame]:
    """Read frames until ``done(frames so far)``; the client's read timeout guards a hang."""
    seen: list[Frame] = []
    for frame in stream:
        seen.append(frame)
        if done(seen):
            return seen
    raise AssertionError(f"the stream ended after {len(seen)} frames")
