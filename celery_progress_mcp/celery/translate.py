"""``update_state`` as progress: what a state and its meta mean.

Understood:

* celery-progress's ``PROGRESS`` meta: ``current``, ``total``, ``percent``,
  ``description`` (and ``pending``);
* a plain meta: ``percentage`` (or ``percent``), ``step`` (or
  ``description``), ``current``/``total``, ``eta_seconds``;
* any other state (``PROGRESS`` without such keys, ``DOWNLOADING``, ...):
  recorded in the session's metadata (``celery_state``), the percentage
  left as it was.

Celery's own states (``STARTED``, ``SUCCESS``, ``FAILURE``, ``RETRY``,
``REVOKED``, ``PENDING``) are left to the lifecycle signals.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

__all__ = ["CELERY_STATES", "PROGRESS_STATE", "Translation", "translate"]

#: The state celery-progress (and most code in the wild) reports progress with.
PROGRESS_STATE = "PROGRESS"
#: States that belong to Celery's lifecycle, handled by signals instead.
CELERY_STATES = frozenset(
    {"PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"}
)
#: Longest custom meta recorded as is; beyond it a truncated repr is kept.
MAX_CUSTOM_META_CHARS = 2000


class Translation(NamedTuple):
    """Arguments for ``TaskProgress.update``; ``metadata`` records a custom state.

    A named tuple, not a dataclass: one is built per ``update_state`` call,
    on the task's hot path.
    """

    percentage: float | None = None
    current: float | None = None
    total: float | None = None
    step: str | None = None
    eta_seconds: float | None = None
    metadata: dict[str, Any] | None = None


_NUMBER_TYPES = (int, float)
_isfinite = math.isfinite


def _number(value: Any) -> float | None:
    if value is None or value.__class__ is bool or not isinstance(value, _NUMBER_TYPES):
        return None
    number = float(value)
    return number if _isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def translate(state: str | None, meta: Any) -> Translation | None:
    """What ``update_state(state=state, meta=meta)`` means as progress; None for nothing."""
    if state is None or state in CELERY_STATES:
        return None
    progress = _progress_of(meta) if isinstance(meta, dict) else None
    if state == PROGRESS_STATE and progress is not None:
        return progress
    custom = {"celery_state": {"state": state, "meta": _json_safe(meta)}}
    if progress is not None:
        return Translation(
            percentage=progress.percentage,
            current=progress.current,
            total=progress.total,
            step=progress.step,
            eta_seconds=progress.eta_seconds,
            metadata=custom,
        )
    return Translation(metadata=custom)


def _progress_of(meta: dict[str, Any]) -> Translation | None:
    get = meta.get
    raw = get("percentage")
    percentage = _number(raw if raw is not None else get("percent"))
    current = _number(get("current"))
    if percentage is None and current is None:
        return None
    total = _number(get("total"))
    if percentage is not None:
        percentage = 100.0 if percentage > 100.0 else max(0.0, percentage)
    if current is not None and current < 0:
        current = None
    if total is not None and total < 0:
        total = None
    eta = _number(get("eta_seconds"))
    step = get("step")
    return Translation(
        percentage,
        current,
        total,
        _text(step if step is not None else get("description")),
        eta if eta is not None and eta >= 0 else None,
    )


def _json_safe(meta: Any) -> Any:
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError):
        return repr(meta)[:MAX_CUSTOM_META_CHARS]
    if len(text) > MAX_CUSTOM_META_CHARS:
        return text[:MAX_CUSTOM_META_CHARS]
    return meta
