"""``tacoq task ID``: show one task as the relay knows it (``--wait`` for its completion).

Talks to the relay over HTTP (``--relay-url`` or ``TACOQ_RELAY_URL``, ``--token`` or
``TACOQ_RELAY_TOKEN``). Prints a table, or with ``--json`` the relay's own JSON of the task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from tacoq.errors import ConfigError

if TYPE_CHECKING:
    from tacoq.model.task import Task
    from tacoq.relay.client import SyncRelayClient

__all__ = ["RelayUrlOption", "TokenOption", "open_client", "register", "show_task", "task"]

RelayUrlOption = Annotated[
    str | None,
    typer.Option(
        "--relay-url",
        envvar="TACOQ_RELAY_URL",
        help="The relay's HTTP address (default: http://127.0.0.1:8080).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(envvar="TACOQ_RELAY_TOKEN", help="The relay's bearer token.", show_default=False),
]
_PREVIEW = 500


def parse_task_id(text: str) -> UUID:
    """A task id from the command line; a one-line ConfigError when it is not a UUID."""
    try:
        return UUID(text.strip())
    except ValueError:
        raise ConfigError(f"{text!r} is not a task id (expected a UUID)") from None


def open_client(relay_url: str | None, token: str | None) -> SyncRelayClient:
    """The blocking relay client the commands use."""
    from tacoq.relay.client import SyncRelayClient

    return SyncRelayClient(relay_url, token=token)


def task(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The task's id (a UUID).")],
    wait: Annotated[
        float | None,
        typer.Option(min=0, help="Wait up to this many seconds for the task to complete."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the relay's JSON of the task.")
    ] = False,
    relay_url: RelayUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show a task: status, kinds, timestamps, input, output or error."""
    tid = parse_task_id(task_id)
    with open_client(relay_url, token) as client:
        found = client.wait(tid, wait) if wait else client.get(tid)
        if found is None:
            from tacoq.config import redact_url
            from tacoq.errors import RelayError

            raise RelayError(
                f"task {tid} is not known to the relay at {redact_url(client.base_url)}",
                status=404,
                error_type="not_found",
            )
    show_task(found, json_output=json_output)


def _printable(text: str, *, lines: bool = False) -> str:
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

    return escape(_printable(text))


def show_task(found: Task, *, json_output: bool) -> None:
    """Print a task as a rich table, or as the relay's JSON; any row prints, whatever it holds."""
    from tacoq.relay.api_models import task_to_api

    out = task_to_api(found)
    if json_output:
        print(out.model_dump_json())
        return
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    status = out.status.value + (" (failed)" if out.is_error else "")
    color = (
        "red"
        if out.is_error
        else {"COMPLETED": "green", "RUNNING": "yellow"}.get(out.status.value, "cyan")
    )
    table = Table(title=f"task {out.id}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = [
        ("status", f"[{color}]{status}[/]"),
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
        console.print(Text(_printable(out.error.traceback, lines=True)), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``tacoq task`` to ``app``."""
    app.command("task")(task)
