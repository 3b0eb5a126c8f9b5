"""Sessions drawn in a terminal with rich: progress bars, sub-operations nested, ETA.

Used by ``sessions watch`` and the demo. ``watch_sessions`` redraws when an
event arrives (the bus wakes it) and at least every ``refresh_s``, reading
the sessions from the store, so what it shows is the store's truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..core.models import ProgressSession, SubOperation, SubOperationState
from ..core.states import TERMINAL_STATUSES, Failed, InProgress, Paused, SessionStatus
from ..tracking.tracker import ProgressTracker

__all__ = ["render_sessions", "watch_sessions"]

#: Sub-operations drawn per session; the rest are summed up in one line.
MAX_SUB_OPERATIONS = 12
#: Bar width in characters.
BAR_WIDTH = 20
#: Width of the name column.
NAME_WIDTH = 26

_STATUS_STYLE = {
    SessionStatus.INITIALIZING: "dim",
    SessionStatus.IN_PROGRESS: "cyan",
    SessionStatus.PAUSED: "yellow",
    SessionStatus.COMPLETED: "green",
    SessionStatus.FAILED: "bold red",
    SessionStatus.CANCELLED: "magenta",
}
_SUB_STYLE = {
    SubOperationState.PENDING: "dim",
    SubOperationState.ACTIVE: "cyan",
    SubOperationState.COMPLETED: "green",
    SubOperationState.FAILED: "bold red",
    SubOperationState.SKIPPED: "dim",
    SubOperationState.CANCELLED: "magenta",
}


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = round(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"ETA {hours}h{minutes:02d}m"
    if minutes:
        return f"ETA {minutes}m{seconds:02d}s"
    return f"ETA {seconds}s"


def _name(session: ProgressSession) -> str:
    name = session.operation_id.rsplit(".", 1)[-1]
    kind = session.metadata.get("celery_kind")
    if kind in ("group", "chord", "chain"):
        return f"{kind} of {len(session.sub_operations)}"
    return name


def _detail(session: ProgressSession) -> str:
    state = session.state
    if isinstance(state, InProgress):
        parts = [state.current_step or "", _eta(state.eta_seconds)]
        return "  ".join(part for part in parts if part)
    if isinstance(state, Paused):
        return f"paused: {state.reason}"
    if isinstance(state, Failed):
        return f"{state.error_code or 'failed'}: {state.error_message}"
    reason = getattr(state, "reason", None) or getattr(state, "result_summary", None)
    return str(reason or "")


def _sub_row(table: Table, sub: SubOperation, last: bool) -> None:
    branch = "└─" if last else "├─"
    style = _SUB_STYLE.get(sub.state, "")
    percentage = 100.0 if sub.state is SubOperationState.COMPLETED else sub.percentage
    detail = sub.error or ""
    name = sub.name.rsplit(".", 1)[-1] if sub.name.count(".") > 1 else sub.name
    table.add_row(
        Text(f"  {branch} {name}", style=style, overflow="ellipsis", no_wrap=True),
        ProgressBar(total=100, completed=percentage, width=BAR_WIDTH, style="grey23"),
        Text(f"{percentage:5.1f}%", style=style),
        Text(sub.state.value, style=style),
        Text(detail, style=style, overflow="ellipsis", no_wrap=True),
    )


def render_sessions(sessions: Sequence[ProgressSession], *, title: str | None = None) -> Table:
    """A table: one bar per session, its sub-operations nested under it."""
    table = Table(title=title, expand=True, show_edge=False, pad_edge=False, box=None)
    table.add_column("session", width=NAME_WIDTH, no_wrap=True)
    table.add_column("progress", width=BAR_WIDTH, no_wrap=True)
    table.add_column("%", justify="right", width=6, no_wrap=True)
    table.add_column("status", width=11, no_wrap=True)
    table.add_column("detail", ratio=1, no_wrap=True, overflow="ellipsis")
    for session in sessions:
        status = session.state.status
        style = _STATUS_STYLE.get(SessionStatus(status), "")
        table.add_row(
            Text(f"{_name(session)} {session.id[:8]}", style=f"bold {style}", no_wrap=True),
            ProgressBar(
                total=100,
                completed=session.percentage,
                width=BAR_WIDTH,
                complete_style="green" if status == SessionStatus.COMPLETED else "cyan",
            ),
            Text(f"{session.percentage:5.1f}%", style=style),
            Text(status, style=style),
            Text(_detail(session), style=style, overflow="ellipsis", no_wrap=True),
        )
        subs = session.sub_operations
        shown = subs[:MAX_SUB_OPERATIONS]
        hidden = subs[MAX_SUB_OPERATIONS:]
        for position, sub in enumerate(shown):
            _sub_row(table, sub, last=position == len(shown) - 1 and not hidden)
        if hidden:
            done = sum(1 for sub in hidden if sub.state.is_terminal)
            table.add_row(Text(f"  └─ … {len(hidden)} more ({done} finished)", style="dim"))
    return table


def watch_sessions(
    tracker: ProgressTracker,
    select: Callable[[ProgressTracker], list[ProgressSession]],
    *,
    until: Callable[[list[ProgressSession]], bool] | None = None,
    console: Console | None = None,
    refresh_s: float = 0.5,
    title: str = "celery-progress-mcp",
    footer: Callable[[], RenderableType] | None = None,
) -> list[ProgressSession]:
    """Draw ``select(tracker)`` live until ``until(sessions)`` is true (or Ctrl-C).

    Returns the sessions as last drawn.
    """
    console = console or Console()
    subscription = tracker.subscribe_to_events()
    sessions: list[ProgressSession] = []

    def frame() -> RenderableType:
        stamp = datetime.now().strftime("%H:%M:%S")
        parts: list[RenderableType] = [render_sessions(sessions, title=f"{title}  {stamp}")]
        if footer is not None:
            parts.append(footer())
        return Group(*parts)

    try:
        with Live(frame(), console=console, refresh_per_second=8, transient=False) as live:
            while True:
                sessions = select(tracker)
                live.update(frame())
                if until is not None and until(sessions):
                    return sessions
                deadline_s = time.monotonic() + refresh_s
                # Wake on the first event, then let a burst settle briefly.
                if subscription.get(timeout=refresh_s) is not None:
                    subscription.drain()
                    time.sleep(max(0.0, min(0.1, deadline_s - time.monotonic())))
    except KeyboardInterrupt:
        return sessions
    finally:
        subscription.close()


def all_finished(sessions: Iterable[ProgressSession]) -> bool:
    return all(session.state.status in TERMINAL_STATUSES for session in sessions)
