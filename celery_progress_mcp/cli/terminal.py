"""Sessions drawn in a terminal with rich: the list, progress bars with sub-operations, ETA.

Every command that shows sessions draws them here (``sessions list``,
``show``, ``watch``, and the demo). ``watch_sessions`` redraws when an event
arrives (the bus wakes it) and at least every ``refresh_s``, reading the
sessions from the store, so what it shows is the store's truth.

The list fits the terminal's width (``_fit``): the id, state, % and age are
never shortened; where room runs out the step and the operation's name end
in "…", and the age column goes before either gets short. Piped (and
not told a width by ``COLUMNS``), its rows are never shortened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..core.durations import duration_text
from ..core.models import ProgressSession, SubOperation, SubOperationState
from ..core.states import (
    TERMINAL_STATUSES,
    Cancelled,
    Completed,
    Failed,
    InProgress,
    Paused,
    ProgressState,
    SessionStatus,
)
from .context import Tracker

__all__ = [
    "all_finished",
    "list_width",
    "print_session_list",
    "render_session_list",
    "render_sessions",
    "watch_sessions",
]

TrackerT = TypeVar("TrackerT", bound=Tracker)

#: Sub-operations drawn per session; the rest are summed up in one line.
MAX_SUB_OPERATIONS = 12
#: Bar width in characters.
BAR_WIDTH = 20
#: Width of the name column.
NAME_WIDTH = 26
#: Spaces between the list's columns when everything fits, and when room is short.
WIDE_GAP = 2
NARROW_GAP = 1
#: The list's step keeps this many characters before the age column gives way.
STEP_MIN_CHARS = 16
#: A long operation name is shortened to this many characters before the step gets short.
OPERATION_SHORT_CHARS = 20
#: The operation's name is shortened to no fewer characters than this.
OPERATION_MIN_CHARS = 10
#: Nor is the step: on a terminal too narrow for these, rows wrap rather than lose a column.
STEP_FLOOR_CHARS = 8
#: The list's columns, left to right.
LIST_COLUMNS = ("id", "operation", "state", "%", "step", "updated")
#: Below this age in seconds the list says seconds, below ``AGE_IN_HOURS_S`` minutes.
AGE_IN_MINUTES_S = 120
#: From this age in seconds on the list says hours.
AGE_IN_HOURS_S = 7200

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


def state_text(state: ProgressState) -> str:
    """The one text a state carries: its step, outcome, error or reason."""
    if isinstance(state, InProgress):
        return state.current_step or ""
    if isinstance(state, Paused | Cancelled):
        return state.reason
    if isinstance(state, Completed):
        return state.result_summary or ""
    if isinstance(state, Failed):
        return state.error_message
    return ""


def _age(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    if seconds < AGE_IN_MINUTES_S:
        return f"{seconds}s ago"
    if seconds < AGE_IN_HOURS_S:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _eta(seconds: float | None) -> str:
    return "" if seconds is None else f"ETA {duration_text(seconds)}"


def _name(session: ProgressSession) -> str:
    name = session.operation_id.rsplit(".", 1)[-1]
    kind = session.metadata.get("celery_kind")
    if kind in ("group", "chord", "chain"):
        return f"{kind} of {len(session.sub_operations)}"
    return name


def _detail(session: ProgressSession) -> str:
    state = session.state
    if isinstance(state, InProgress):
        parts = [state_text(state), _eta(state.eta_seconds)]
        return "  ".join(part for part in parts if part)
    if isinstance(state, Paused):
        return f"paused: {state_text(state)}"
    if isinstance(state, Failed):
        return f"{state.error_code or 'failed'}: {state_text(state)}"
    return state_text(state)


def _list_cells(session: ProgressSession) -> dict[str, str]:
    # A text of several lines is shown on one.
    step = " ".join(state_text(session.state).split())
    return {
        "id": session.id,
        "operation": session.operation_id.rsplit(".", 1)[-1],
        "state": session.state.status,
        "%": f"{session.percentage:.1f}",
        "step": step,
        "updated": _age(session.updated_at),
    }


def _list_width(widths: dict[str, int], gap: int) -> int:
    return sum(widths.values()) + gap * (len(widths) - 1)


def _fit(natural: dict[str, int], width: int | None) -> tuple[dict[str, int], int]:
    """The columns' widths and the gap between them that fit ``width`` (None: no limit).

    What gives way, in order: the wide gap, the step down to
    ``STEP_MIN_CHARS``, the age column, a long operation name down to
    ``OPERATION_SHORT_CHARS``, the step down to ``STEP_FLOOR_CHARS``, the
    operation down to ``OPERATION_MIN_CHARS``. The step takes what is left.
    """
    if width is None or _list_width(natural, WIDE_GAP) <= width:
        return natural, WIDE_GAP
    widths = dict(natural)

    def fit(column: str, floor: int) -> None:
        # Shorter by what is too much, or longer by what is left, up to its natural width.
        excess = _list_width(widths, NARROW_GAP) - width
        widths[column] = min(natural[column], max(floor, widths[column] - excess))

    fit("step", STEP_MIN_CHARS)
    if _list_width(widths, NARROW_GAP) > width:
        del widths["updated"]
    for column, floor in (
        ("operation", OPERATION_SHORT_CHARS),
        ("step", STEP_FLOOR_CHARS),
        ("operation", OPERATION_MIN_CHARS),
        ("step", STEP_FLOOR_CHARS),
    ):
        fit(column, floor)
    return widths, NARROW_GAP


def _list_line(cells: dict[str, str], widths: dict[str, int], gap: int, header: bool) -> Text:
    line = Text()
    last = list(widths)[-1]
    for column, width in widths.items():
        cell = Text(cells[column], style="bold" if header else "")
        if not header and column == "state":
            cell.stylize(_STATUS_STYLE.get(SessionStatus(cells[column]), ""))
        if column == "%":
            cell.align("right", width)
        else:
            cell.truncate(width, overflow="ellipsis", pad=column != last)
        line.append_text(cell)
        if column != last:
            line.append(" " * gap)
    line.rstrip()
    return line


def render_session_list(sessions: Iterable[ProgressSession], *, width: int | None = None) -> Text:
    """One row per session: id, operation, state, %, step or outcome, age of the last update.

    The rows fit ``width`` columns as the module says; None: no limit.
    """
    rows = [_list_cells(session) for session in sessions]
    headers = {column: column for column in LIST_COLUMNS}
    natural = {
        column: max(cell_len(row[column]) for row in [headers, *rows]) for column in LIST_COLUMNS
    }
    widths, gap = _fit(natural, width)
    lines = [_list_line(row, widths, gap, header=row is headers) for row in [headers, *rows]]
    return Text("\n").join(lines)


def list_width(console: Console) -> int | None:
    """The width the list must fit: the terminal's, or ``COLUMNS``; piped and untold, none."""
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console.width
    return None


def print_session_list(sessions: Iterable[ProgressSession], console: Console | None = None) -> None:
    """``sessions list``: the list at the width of where it goes."""
    console = console or Console()
    # soft_wrap: rich neither wraps nor crops what is wider than it assumes a pipe to be.
    console.print(render_session_list(sessions, width=list_width(console)), soft_wrap=True)


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
    tracker: TrackerT,
    select: Callable[[TrackerT], list[ProgressSession]],
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
    """True when every session has ended (``watch``'s end with session ids)."""
    return all(session.state.status in TERMINAL_STATUSES for session in sessions)
