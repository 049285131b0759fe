"""``tacoq workers`` and ``tacoq kinds``: the workers online and the task kinds they announced,
through the relay's HTTP API (``GET /workers``, ``GET /kinds``, ``GET /kinds/{worker_kind}/
{task_kind}``; docs/http-api.md, "Workers and task kinds").

Both take ``--relay``/``TACOQ_RELAY_URL`` and ``--token``/``TACOQ_RELAY_TOKEN`` and print a table
at most :data:`TABLE_WIDTH` columns wide (a long cell ends in ``…``), or with ``--json`` the
relay's own JSON. ``tacoq kinds WORKER_KIND TASK_KIND`` prints that task kind's input and output
JSON Schemas; a kind no live worker announced exits 1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tacoq.errors import RelayError
from tacoq.model.wire import quoted
from tacoq_cli.errors import print_warning
from tacoq_cli.options import JsonOption, RelayOption, RelayUrlDeprecated, TokenOption
from tacoq_cli.relay_client import kind_filter, open_client
from tacoq_cli.task_views import printable

if TYPE_CHECKING:
    from tacoq.relay.worker_models import KindOut, PayloadContractOut, WorkerOut

__all__ = ["TABLE_WIDTH", "column_widths", "kinds", "register", "seen_ago", "workers"]

#: The widest a table of workers or kinds gets; longer cells are cut with ``…``.
TABLE_WIDTH = 100
#: The columns whose cells may be cut, with the widest each gets; the others (states, counts,
#: times) are never cut.
_CUT = {
    "name": 30,
    "kind": 20,
    "task kinds": 30,
    "host:pid": 24,
    "worker kind": 20,
    "task kind": 24,
    "input": 24,
    "output": 24,
    "workers": 30,
}
#: The narrowest a column that is cut gets (narrower than this, the table overflows instead).
_MIN_CUT = 6
_RIGHT = ("running", "ok/failed", "seen")


def seen_ago(when: datetime, now: datetime | None = None) -> str:
    """How long ago ``when`` was, in its largest unit: ``4s``, ``12m``, ``3h``, ``2d``."""
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def column_widths(headers: tuple[str, ...], rows: list[list[str]], room: int) -> list[int]:
    """The width of each column so that the cells fit ``room`` columns (the content, without
    the padding between columns): each is as wide as its widest cell, at most its cap in
    :data:`_CUT`; while too wide, the widest of those that may be cut loses a column, down to
    :data:`_MIN_CUT` (or its header's width)."""
    widths = [
        min(max([len(header)] + [len(row[i]) for row in rows]), _CUT.get(header, 10**6))
        for i, header in enumerate(headers)
    ]
    floors = [
        min(max(len(header), _MIN_CUT) if header in _CUT else len(header), width)
        for header, width in zip(headers, widths, strict=True)
    ]
    while sum(widths) > room:
        cuttable = [i for i, h in enumerate(headers) if h in _CUT and widths[i] > floors[i]]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _print_table(title: str, headers: tuple[str, ...], rows: list[list[str]]) -> None:
    """Print ``title``, then a table of one line per row, at most :data:`TABLE_WIDTH` columns
    wide (or the terminal's width, if narrower, as long as no column gets too narrow): every
    cell printable (no markup, no control characters) and cut with ``…`` when too long."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cells = [[printable(cell) for cell in row] for row in rows]
    width = min(Console().width, TABLE_WIDTH)
    padding = 3 * len(headers) - 1  # a space each side of each column, one between columns
    widths = column_widths(headers, cells, width - padding)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for header, column_width in zip(headers, widths, strict=True):
        table.add_column(
            header,
            width=column_width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if header in _RIGHT else "left",
        )
    for row in cells:
        table.add_row(*(Text(cell, no_wrap=True, overflow="ellipsis") for cell in row))
    print(title, flush=True)
    Console(width=max(width, sum(widths) + padding)).print(table)


def _worker_row(worker: WorkerOut, now: datetime) -> list[str]:
    counts = (
        "-"
        if worker.succeeded is None or worker.failed is None
        else f"{worker.succeeded}/{worker.failed}"
    )
    return [
        worker.name,
        worker.worker_kind,
        worker.state,
        ", ".join(worker.task_kinds) or "-",
        "-" if worker.running is None else str(worker.running),
        counts,
        seen_ago(worker.seen_at, now),
        "-" if worker.host is None else f"{worker.host}:{worker.pid}",
    ]


def workers(
    ctx: typer.Context,
    worker_kind: Annotated[
        str | None,
        typer.Option(
            "--worker-kind",
            metavar="KIND",
            help="Only the workers of this worker kind.",
            show_default=False,
        ),
    ] = None,
    everyone: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also the workers gone (no heartbeat for three intervals) in the last day.",
        ),
    ] = False,
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """List the workers online: kind, task kinds, what they run.

    One row per worker: its name, worker kind, state (online, or gone with --all), task
    kinds, the tasks running and those that succeeded/failed since it started (from its last
    heartbeat), how long ago the relay last heard from it, and its host:pid. --json prints
    the relay's {"workers": [...]}, with every field.

    Examples:

    \b
      tacoq workers
      tacoq workers --worker-kind images --all
      tacoq workers --json
    """
    wanted = kind_filter("--worker-kind", worker_kind)
    with open_client(ctx, relay, token, relay_url) as client:
        found = client.workers(wanted, all=everyone)
    if json_output:
        from tacoq.relay.worker_models import WorkersOut

        print(WorkersOut(workers=found).model_dump_json(), flush=True)
        return
    online = sum(worker.state == "online" for worker in found)
    title = f"{online} worker(s) online"
    if everyone:
        title += f", {len(found) - online} gone"
    if wanted is not None:
        title += f", of worker kind {quoted(wanted)}"
    now = datetime.now(UTC)
    headers = ("name", "kind", "state", "task kinds", "running", "ok/failed", "seen", "host:pid")
    _print_table(title, headers, [_worker_row(worker, now) for worker in found])


def _joined(values: list[str]) -> str:
    """The distinct ``values`` in order, joined with `` | ``."""
    return " | ".join(dict.fromkeys(values))


def _kind_row(kind: KindOut) -> list[str]:
    names = [name for contract in kind.contracts for name in contract.workers]
    return [
        kind.worker_kind,
        kind.task_kind,
        _joined([c.input.content_type for c in kind.contracts]),
        _joined([c.output.content_type for c in kind.contracts]),
        f"yes ({len(kind.contracts)})" if kind.conflict else "no",
        ", ".join(dict.fromkeys(names)),
    ]


def _schema(payloads: list[PayloadContractOut]) -> Any:
    """One JSON Schema for a task's input (or output) as the contracts announce it: the
    announced schema, ``{"contentMediaType": ...}`` for a payload that is not JSON, and
    ``{"anyOf": [...]}`` of the distinct ones when the contracts disagree (an input matching
    any of them is valid)."""
    distinct: list[Any] = []
    for payload in payloads:
        schema = payload.json_schema
        if schema is None:
            schema = {"contentMediaType": payload.content_type}
        if schema not in distinct:
            distinct.append(schema)
    return distinct[0] if len(distinct) == 1 else {"anyOf": distinct}


def kinds(
    ctx: typer.Context,
    worker_kind: Annotated[
        str | None,
        typer.Argument(
            metavar="WORKER_KIND",
            help="Only the task kinds of this worker kind.",
            show_default=False,
        ),
    ] = None,
    task_kind: Annotated[
        str | None,
        typer.Argument(
            metavar="TASK_KIND",
            help="Print this task kind's input and output JSON Schemas.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """List the task kinds live workers announced, or show one's schemas.

    Without TASK_KIND, one row per task kind: its worker kind, the content types of its input
    and output, whether live workers announce different contracts for it (a deploy in
    progress), and the workers. With WORKER_KIND and TASK_KIND, its input and output JSON
    Schemas ({"input": ..., "output": ...}; while workers disagree, each is the anyOf of
    theirs). --json prints the relay's JSON. A worker kind or task kind no live worker
    announced exits 1.

    Examples:

    \b
      tacoq kinds
      tacoq kinds images
      tacoq kinds images resize
      tacoq kinds images resize --json
    """
    wanted = kind_filter("WORKER_KIND", worker_kind)
    task = kind_filter("TASK_KIND", task_kind)
    with open_client(ctx, relay, token, relay_url) as client:
        if task is not None and wanted is not None:
            one = client.kind(wanted, task)
            found = [] if one is None else [one]
        else:
            found = client.kinds(wanted)
        where = client.base_url
    if wanted is not None and not found:
        from tacoq.config import redact_url

        what = "any task kind" if task is None else f"task kind {quoted(task)}"
        raise RelayError(
            f"no live worker of {quoted(wanted)} announced {what} (asked the relay at "
            f"{redact_url(where)}; `tacoq workers --all` lists the workers)",
            status=404,
            error_type="not_found",
        )
    if task is not None:
        _print_schemas(found[0], json_output=json_output)
        return
    if json_output:
        from tacoq.relay.worker_models import KindsOut

        print(KindsOut(kinds=found).model_dump_json(), flush=True)
        return
    title = f"{len(found)} task kind(s) announced by live workers"
    headers = ("worker kind", "task kind", "input", "output", "conflict", "workers")
    _print_table(title, headers, [_kind_row(kind) for kind in found])


def _print_schemas(kind: KindOut, *, json_output: bool) -> None:
    if json_output:
        print(kind.model_dump_json(), flush=True)
        return
    if kind.conflict:
        print_warning(
            f"live workers of {quoted(kind.worker_kind)} announce {len(kind.contracts)} "
            f"contracts for {quoted(kind.task_kind)} (a deploy in progress?): each schema is "
            "the anyOf of theirs; --json shows each contract with its workers"
        )
    shown = {
        "input": _schema([c.input for c in kind.contracts]),
        "output": _schema([c.output for c in kind.contracts]),
    }
    print(json.dumps(shown, indent=2), flush=True)


def register(app: typer.Typer) -> None:
    """Add ``tacoq workers`` and ``tacoq kinds`` to ``app``."""
    app.command("workers")(workers)
    app.command("kinds")(kinds)
