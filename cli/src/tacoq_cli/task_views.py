"""How ``tacoq task`` commands print tasks: one task as a table of its fields, a page of tasks
as a table of rows, or either as the relay's JSON.

Any row prints, whatever it holds: text from a task is shown as text, never read as rich markup,
and control characters (terminal escape sequences, bells) are written as ``\\xNN``. Task ids are
never broken across lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tacoq.contracts.store import TaskPage
    from tacoq.model.task import Task
    from tacoq.relay.api_models import TaskOut

__all__ = ["print_task_page", "printable", "show_task"]

#: The most of an input or output the table of one task shows, in characters.
_PREVIEW = 500
#: A width no table of tasks reaches (to measure one's narrowest).
_UNBOUNDED = 100_000


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with control characters (terminal escape sequences, bells) written as
    ``\\xNN``; newlines and tabs are kept when ``lines``."""
    kept = "\n\t" if lines else ""
    return "".join(
        f"\\x{ord(c):02x}" if (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) and c not in kept else c
        for c in text
    )


def _shown(text: str) -> str:
    """``text`` for a rich table cell: printable, and never read as markup."""
    from rich.markup import escape

    return escape(printable(text))


def _status(out: TaskOut) -> str:
    """The status cell: the status, ``(failed)`` after a failed one, in its colour."""
    status = out.status.value + (" (failed)" if out.is_error else "")
    color = (
        "red"
        if out.is_error
        else {"COMPLETED": "green", "RUNNING": "yellow"}.get(out.status.value, "cyan")
    )
    return f"[{color}]{status}[/]"


def show_task(found: Task, *, json_output: bool) -> None:
    """Print a task as a rich table, or as the relay's JSON; any row prints, whatever it holds."""
    from tacoq.relay.api_models import task_to_api

    out = task_to_api(found)
    if json_output:
        print(out.model_dump_json(), flush=True)
        return
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"task {out.id}", show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = [
        ("status", _status(out)),
        ("task kind", _shown(out.task_kind)),
        ("worker kind", _shown(out.worker_kind)),
        ("priority", str(out.priority)),
        ("attempt", str(out.attempt)),
        ("created at", out.created_at or "-"),
        ("started at", out.started_at or "-"),
        ("completed at", out.completed_at or "-"),
        ("executed by", _shown(out.executed_by or "-")),
        ("ttl", f"{out.ttl} s"),
    ]
    for name, payload in (("input", out.input), ("output", out.output)):
        if payload is not None:
            text = payload.data if isinstance(payload.data, str) else json.dumps(payload.data)
            if len(text) > _PREVIEW:
                text = text[:_PREVIEW] + "…"
            about = _shown(f"({payload.content_type}, {payload.encoding})")
            rows.append((name, f"{_shown(text)}  [dim]{about}[/]"))
    if out.error is not None:
        rows.append(("error", f"[red]{_shown(f'{out.error.type}: {out.error.message}')}[/]"))
    console = Console()
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if out.error is not None and out.error.traceback:
        console.print(Text(printable(out.error.traceback, lines=True)), highlight=False)


def _when(timestamp: str | None) -> str:
    """An API timestamp to the second, ``2030-01-01 12:00:00`` (``-`` when not reached)."""
    return "-" if timestamp is None else timestamp[:19].replace("T", " ")


def print_task_page(page: TaskPage, *, json_output: bool) -> None:
    """Print a page of tasks as a table (one row each, then the cursor of the next page), or
    as the relay's JSON of the page (``{"tasks": [...], "next_cursor": ...}``)."""
    from tacoq.relay.api_models import TaskPageOut, task_to_api

    out = TaskPageOut(tasks=[task_to_api(t) for t in page.tasks], next_cursor=page.next_cursor)
    if json_output:
        print(out.model_dump_json(), flush=True)
        return
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    more = "" if out.next_cursor is None else ", more after them"
    table = Table(
        title=f"{len(out.tasks)} task(s), newest first{more}; times in UTC",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    headers = ("id", "status", "task kind", "worker kind", "attempt", "created", "completed")
    rows = [
        [
            Text(str(task.id)),
            Text.from_markup(_status(task)),
            Text(printable(task.task_kind)),
            Text(printable(task.worker_kind)),
            Text(str(task.attempt)),
            Text(_when(task.created_at)),
            Text(_when(task.completed_at)),
        ]
        for task in out.tasks
    ]
    for header in headers:
        table.add_column(header, justify="right" if header == "attempt" else "left")
    for row in rows:
        table.add_row(*row)
    console = Console()
    unbounded = console.options.update_width(_UNBOUNDED)
    if Measurement.get(console, unbounded, table).maximum > console.width:
        # Too wide for one line per task: each column gets the width of its longest word, so
        # cells wrap between words only, and the table is never narrower than that (a narrow
        # terminal wraps its lines, but no id, kind or time is cut in the middle).
        for index, column in enumerate(table.columns):
            column.width = max(
                _longest_word(cell.plain)
                for cell in [Text(headers[index])] + [r[index] for r in rows]
            )
        narrowest = Measurement.get(console, unbounded, table).maximum
        if console.width < narrowest:
            console = Console(width=narrowest)
    console.print(table)
    if out.next_cursor is not None:
        console.print(f"next page: --cursor {out.next_cursor}", highlight=False, soft_wrap=True)


def _longest_word(text: str) -> int:
    """The length of the longest word of ``text`` (split at spaces)."""
    return max((len(word) for word in text.split(" ")), default=0)
