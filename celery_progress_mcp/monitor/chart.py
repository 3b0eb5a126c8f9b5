"""A session's history as an SVG chart: percentage over time, state changes marked.

Drawn on the server, so the page needs no charting library and the picture
is the same with or without JavaScript. Every text in it is XML-escaped.
"""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from ..core.models import ProgressSession, ProgressSnapshot, rollup_percentage
from ..core.states import percentage_of

__all__ = ["history_svg"]

#: Marker colour of each state (presentation attributes: the SVG is shown as an image,
#: where the page's stylesheet does not reach).
STATE_COLOURS = {
    "initializing": "#8a94a6",
    "in_progress": "#2f6fde",
    "paused": "#c98a00",
    "completed": "#1f9d55",
    "failed": "#d64545",
    "cancelled": "#6b7280",
}
_AXIS = 'font-family="system-ui, sans-serif" font-size="11" fill="#5b6475"'

#: Drawing size in SVG user units; the page scales it to its width.
WIDTH = 720
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 12, 28


def history_svg(session: ProgressSession) -> str:
    history = session.history
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label={quoteattr(f"history of {session.id}")}>',
        f"<title>{escape(f'Progress of {session.operation_id} over time')}</title>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfcfe" '
        'stroke="#d9dee8"/>',
    ]
    for pct in (0, 25, 50, 75, 100):
        y = _TOP + plot_h * (1 - pct / 100)
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9f0"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" {_AXIS} text-anchor="end">{pct}%</text>'
        )
    if not history:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" {_AXIS} text-anchor="middle">'
            "no history recorded</text>"
        )
        parts.append("</svg>")
        return "".join(parts)
    start, end = history[0].timestamp, history[-1].timestamp
    span_s = max((end - start).total_seconds(), 1e-6)

    def x_of(moment: datetime) -> float:
        return _LEFT + plot_w * ((moment - start).total_seconds() / span_s)

    levels = _percentages(history)

    def y_of(index: int) -> float:
        return _TOP + plot_h * (1 - levels[index] / 100)

    points = " ".join(f"{x_of(s.timestamp):.1f},{y_of(i):.1f}" for i, s in enumerate(history))
    parts.append(
        f'<polyline points="{points}" fill="none" stroke="#2f6fde" stroke-width="2" '
        'stroke-linejoin="round"/>'
    )
    previous = None
    for index, snapshot in enumerate(history):
        status = snapshot.state.status
        if status != previous:
            label = f"{status} at {snapshot.timestamp.isoformat(timespec='seconds')}"
            parts.append(
                f'<circle cx="{x_of(snapshot.timestamp):.1f}" cy="{y_of(index):.1f}" r="4" '
                f'fill="{STATE_COLOURS.get(status, "#333")}">'
                f"<title>{escape(label)}</title></circle>"
            )
            previous = status
    bottom = HEIGHT - 8
    parts.append(f'<text x="{_LEFT}" y="{bottom}" {_AXIS}>{escape(_clock(start))}</text>')
    parts.append(
        f'<text x="{WIDTH - _RIGHT}" y="{bottom}" {_AXIS} text-anchor="end">'
        f"{escape(_clock(end))} (+{_span(span_s)})</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _percentages(history: tuple[ProgressSnapshot, ...]) -> list[float]:
    """Each snapshot's percentage.

    An in-progress state that carried none (its sub-operations carry the
    progress) rolls up the sub-operations the snapshot recorded (Verbose
    granularity); without those the previous point's level is kept, so the
    line stays flat rather than dropping to zero.
    """
    levels: list[float] = []
    for snapshot in history:
        level = percentage_of(snapshot.state)
        if level is None:
            if snapshot.sub_operations is not None:
                level = rollup_percentage(snapshot.sub_operations)
            else:
                level = levels[-1] if levels else 0.0
        levels.append(level)
    return levels


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
