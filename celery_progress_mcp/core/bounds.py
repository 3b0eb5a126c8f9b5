"""The bounds of what the tracker is given: text, ids and metadata.

Every text is valid UTF-8 (a Python string holding a lone surrogate is not:
no store, JSON encoder or database driver can write it) and within its
``ProgressConfig`` bound. Two kinds of text:

* refused past their bound, or when not valid UTF-8 (:class:`InvalidProgress`
  naming the field and the limit): ids, sub-operation names, step text,
  which the caller words and can shorten;
* truncated with :data:`TRUNCATION_MARKER`, with what could not be written
  (a lone surrogate, a NUL) replaced by U+FFFD: error messages and codes,
  result summaries, pause and cancel reasons. They are recorded as a task
  ends (an exception's message may carry a file name's undecodable bytes),
  and ending a session must not fail on its wording.

Metadata is a JSON object whose keys, at every depth, are strings: JSON
would turn ``{1: "a"}`` into ``{"1": "a"}``, so it is refused, not changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from .config import ProgressConfig
from .errors import InvalidProgress
from .models import SubOperation
from .states import (
    Cancelled,
    Completed,
    Failed,
    InProgress,
    Paused,
    ProgressState,
    check_step_number,
)

__all__ = ["TRUNCATION_MARKER", "Bounds", "encode_metadata", "lookup_text"]

#: Ends a text cut to its bound; the result, marker included, fits the bound.
TRUNCATION_MARKER = "… [truncated]"
_REPLACEMENT = "\ufffd"
_CONTAINERS = (Mapping, list, tuple)
_State = TypeVar("_State", Paused, Cancelled, Completed, Failed)


def _not_utf8(value: str) -> bool:
    """Whether ``value`` holds a surrogate code point (it cannot be UTF-8 encoded)."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lookup_text(value: str | None, what: str) -> None:
    """Refuse a text a session is looked up by (an id, a search) that no store can
    encode: ``InvalidProgress`` instead of a driver's ``UnicodeEncodeError``."""
    if value is not None and not isinstance(value, str):
        raise InvalidProgress(f"{what} must be a string, got {type(value).__name__}")
    if value is not None and _not_utf8(value):
        raise InvalidProgress(f"{what} is not valid UTF-8 text (it holds a lone surrogate)")


def _storable(value: str) -> str:
    """``value`` with lone surrogates and NUL characters replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", _REPLACEMENT)
    if _not_utf8(value):
        value = "".join(_REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value


def _check_keys(metadata: Mapping[Any, Any], what: str) -> None:
    """Refuse a key that is not a string, at any depth (iteratively: no recursion limit)."""
    pending: list[Any] = [metadata]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidProgress(
                        f"{what} has the key {key!r} of type {type(key).__name__}; "
                        "keys must be strings (JSON would change it)"
                    )
                if isinstance(child, _CONTAINERS):
                    pending.append(child)
        else:
            pending.extend(child for child in item if isinstance(child, _CONTAINERS))


def encode_metadata(
    metadata: Mapping[str, Any], limit_bytes: int, what: str, *, keys_checked: bool = False
) -> str:
    """``metadata`` as JSON; :class:`InvalidProgress` if it cannot be, or is over
    ``limit_bytes`` UTF-8 bytes. ``keys_checked``: every key is known to be a
    string already (a merge of checked mappings)."""
    if not isinstance(metadata, Mapping):
        raise InvalidProgress(f"{what} must be a mapping, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(metadata, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidProgress(f"{what} is not JSON-serializable: {exc}") from exc
    if not keys_checked:
        _check_keys(metadata, what)
    try:
        size_bytes = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidProgress(
            f"{what} holds text that is not valid UTF-8 (a lone surrogate)"
        ) from None
    if size_bytes > limit_bytes:
        raise InvalidProgress(
            f"{what} is {size_bytes} bytes as JSON, over the {limit_bytes}-byte limit"
        )
    return encoded


class Bounds:
    """The checks of one configuration's bounds (the engine's, on every input)."""

    def __init__(self, config: ProgressConfig) -> None:
        self._id_chars = config.max_id_chars
        self._name_chars = config.max_name_chars
        self._step_chars = config.max_step_chars
        self._error_chars = config.max_error_chars
        self._summary_chars = config.max_result_summary_chars
        self._reason_chars = config.max_reason_chars

    # -- refused past the bound ---------------------------------------------

    def identifier(self, value: object, what: str) -> str:
        """A non-empty id within ``max_id_chars``, valid UTF-8, without NUL."""
        if not isinstance(value, str) or not value.strip():
            raise InvalidProgress(f"{what} must be a non-empty string")
        return self._refused(value, what, self._id_chars, "max_id_chars", no_nul=True)

    def name(self, value: object, what: str) -> str:
        return self._refused(value, what, self._name_chars, "max_name_chars", no_nul=True)

    def step(self, value: object) -> str:
        return self._refused(value, "current_step", self._step_chars, "max_step_chars")

    def _refused(
        self, value: object, what: str, limit: int, field: str, *, no_nul: bool = False
    ) -> str:
        if not isinstance(value, str):
            raise InvalidProgress(f"{what} must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise InvalidProgress(
                f"{what} is {len(value)} characters long, over the limit: "
                f"at most {limit} (ProgressConfig.{field})"
            )
        if _not_utf8(value):
            raise InvalidProgress(f"{what} is not valid UTF-8 text (it holds a lone surrogate)")
        if no_nul and "\x00" in value:
            raise InvalidProgress(f"{what} contains a NUL character, which cannot be stored")
        return value

    # -- truncated past the bound -------------------------------------------

    def error(self, value: str) -> str:
        return self._truncated(value, "error_message", self._error_chars)

    def optional_error(self, value: str | None, what: str = "error_code") -> str | None:
        return None if value is None else self._truncated(value, what, self._error_chars)

    def result_summary(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self._truncated(value, "result_summary", self._summary_chars)

    def reason(self, value: str) -> str:
        return self._truncated(value, "reason", self._reason_chars)

    def _truncated(self, value: object, what: str, limit: int) -> str:
        if not isinstance(value, str):
            raise InvalidProgress(f"{what} must be a string, got {type(value).__name__}")
        value = _storable(value)
        if len(value) > limit:
            value = value[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
        return value

    # -- models -----------------------------------------------------------------

    def in_progress(self, state: InProgress) -> None:
        """Refuse an in-progress state over the bounds (the hot path: no match, no copy)."""
        if state.current_step is not None:
            self.step(state.current_step)
        if state.current_step_number is not None:
            check_step_number(state.current_step_number, state.total_steps)

    def state(self, state: ProgressState) -> ProgressState:
        """``state`` within bounds: its step checked, its texts truncated."""
        match state:
            case InProgress():
                self.in_progress(state)
                return state
            case Paused(reason=reason):
                return _changed(state, "reason", reason, self.reason(reason))
            case Cancelled(reason=reason):
                return _changed(state, "reason", reason, self.reason(reason))
            case Completed(result_summary=summary):
                bounded = self.result_summary(summary)
                return _changed(state, "result_summary", summary, bounded)
            case Failed(error_message=message, error_code=code):
                state = _changed(state, "error_message", message, self.error(message))
                return _changed(state, "error_code", code, self.optional_error(code))
            case _:
                return state

    def sub_operation(self, sub: SubOperation) -> SubOperation:
        """A new sub-operation within bounds: id and name checked, error truncated."""
        self.identifier(sub.id, "sub-operation id")
        self.name(sub.name, f"the name of sub-operation {sub.id!r}")
        error = self.optional_error(sub.error, f"the error of sub-operation {sub.id!r}")
        return sub if error == sub.error else sub.replace(error=error)


def _changed(state: _State, field: str, old: object, new: object) -> _State:
    """``state`` with ``field`` set to ``new``; itself where nothing changed."""
    return state if new is old else state.replace(**{field: new})
