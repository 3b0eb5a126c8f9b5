"""A duration as people read it, the same on the dashboard and in the terminal.

``web/static/dashboard.js`` mirrors it, so a page redrawn in the browser
reads as the server wrote it.
"""

from __future__ import annotations

__all__ = ["duration_text"]

#: Below this many seconds a duration keeps one decimal (``3.2s``).
TENTHS_BELOW_S = 10


def duration_text(seconds: float | None) -> str:
    """``3.2s``, ``42s``, ``5m 03s``, ``2h 07m``; empty for an unknown duration."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < TENTHS_BELOW_S:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
