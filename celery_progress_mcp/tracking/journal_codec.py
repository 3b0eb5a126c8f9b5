"""A journal's content as JSON, and back: never pickle.

A journal file is one JSON object::

    {"format": "celery-progress-mcp journal", "version": 1,
     "store": "postgresql+psycopg://app@db/progress", "host": "...", "pid": 4242,
     "written_at": "2025-01-01T12:00:00Z",
     "writes": [
       {"session": "<id>", "create": {<the Change>}, "if_absent": true},
       {"session": "<id>", "call": "engine.update", "arguments": {<its dataclass>}},
       ...]}

A creation is its ``Change`` (the session, its events, its snapshot) as
pydantic dumps it; a mutation is the name and arguments :mod:`.named_calls`
gives it. Writes are in the order they were accepted, each session's in
order. What this version cannot read is refused with
:class:`UnreadableJournal`; what another process may read (a newer version,
a call this process has not registered, another store's journal) with
:class:`NotReadableHere`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from ..core.engine import Change, Engine
from ..core.errors import ProgressError
from ..store.base import Creation, Write
from .named_calls import bind, call_kind, describe

__all__ = [
    "JOURNAL_FORMAT",
    "JOURNAL_VERSION",
    "NotReadableHere",
    "UnreadableJournal",
    "decode_journal",
    "decode_write",
    "encode_journal",
    "encode_write",
]

#: The ``format`` of every journal file.
JOURNAL_FORMAT = "celery-progress-mcp journal"
#: The ``version`` this code writes and reads.
JOURNAL_VERSION = 1

_CHANGE: TypeAdapter[Change] = TypeAdapter(Change)


class UnreadableJournal(ProgressError):
    """Not a journal, or not one any version of this code wrote: it is set aside."""


class NotReadableHere(ProgressError):
    """A journal another process may read (a newer version, a call registered
    there, another store's): it is left for that process."""


def encode_write(session_id: str, write: Write) -> dict[str, Any] | None:
    """``write`` as a JSON object; None if it is not data (a function of its own)."""
    try:
        if isinstance(write, Creation):
            change = _CHANGE.dump_python(write.change, mode="json")
            return {"session": session_id, "create": change, "if_absent": write.if_absent}
        described = describe(write)
        if described is None:
            return None
        name, arguments = described
        kind = call_kind(name)
        assert kind is not None  # describe names known calls only
        dumped = kind.adapter.dump_python(arguments, mode="json", warnings=False)
    except (PydanticSerializationError, ValueError, TypeError):
        return None  # a value JSON cannot carry
    return {"session": session_id, "call": name, "arguments": dumped}


def decode_write(entry: Any, engine: Engine) -> tuple[str, Write]:
    """The session id and the write ``entry`` holds, its mutation made with ``engine``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("session"), str):
        raise UnreadableJournal(f"not a journalled write: {_excerpt(entry)}")
    session_id: str = entry["session"]
    try:
        if "create" in entry:
            change = _CHANGE.validate_python(entry["create"])
            if change.session.id != session_id:
                raise UnreadableJournal(f"a creation of {change.session.id!r} under {session_id!r}")
            return session_id, Creation(change, bool(entry.get("if_absent", False)))
        name = entry.get("call")
        if not isinstance(name, str):
            raise UnreadableJournal(f"neither a creation nor a call: {_excerpt(entry)}")
        kind = call_kind(name)
        if kind is None:
            raise NotReadableHere(f"the call {name!r} is not registered in this process")
        arguments = kind.adapter.validate_python(entry.get("arguments"))
    except ValidationError as exc:
        raise UnreadableJournal(f"a write of {session_id!r} does not decode: {exc}") from exc
    return session_id, bind(name, engine, arguments)


def encode_journal(store: str, writes: Iterable[tuple[str, Write]]) -> tuple[bytes, int, int]:
    """A journal file's content for ``writes``; how many it holds, and how many were
    left out as not data."""
    entries = []
    left_out = 0
    for session_id, write in writes:
        entry = encode_write(session_id, write)
        if entry is None:
            left_out += 1
        else:
            entries.append(entry)
    document = {
        "format": JOURNAL_FORMAT,
        "version": JOURNAL_VERSION,
        "store": store,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "written_at": datetime.now(UTC).isoformat(),
        "writes": entries,
    }
    # ASCII: a lone surrogate in a text is escaped, and comes back as it was.
    data = json.dumps(document, separators=(",", ":"))
    return data.encode("ascii"), len(entries), left_out


def decode_journal(data: bytes, store: str, engine: Engine) -> list[tuple[str, Write]]:
    """The writes of a journal file of ``store``, in order, mutations made with ``engine``."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnreadableJournal(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != JOURNAL_FORMAT:
        raise UnreadableJournal("not a celery-progress-mcp journal")
    version = document.get("version")
    if not isinstance(version, int) or version < 1:
        raise UnreadableJournal(f"no journal version: {version!r}")
    if version > JOURNAL_VERSION:
        raise NotReadableHere(f"journal version {version}: this code reads {JOURNAL_VERSION}")
    if document.get("store") != store:
        raise NotReadableHere(f"a journal of another store: {document.get('store')!r}")
    writes = document.get("writes")
    if not isinstance(writes, list):
        raise UnreadableJournal("no list of writes")
    return [decode_write(entry, engine) for entry in writes]


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
