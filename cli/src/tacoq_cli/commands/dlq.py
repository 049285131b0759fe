"""``tacoq dlq list|show|requeue|purge``: the dead letters the relay keeps in its store.

The relay consumes every dead-lettered message into its store (``docs/architecture.md``, "Dead
letters"); these commands work from there, over the relay's HTTP API (``--relay`` or
``TACOQ_RELAY_URL``, ``--token`` or ``TACOQ_RELAY_TOKEN``). ``requeue`` first lists what matches,
then requeues each of those once (a message dead-lettered again meanwhile is not requeued a
second time), printing its progress.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from tacoq.errors import ConfigError
from tacoq_cli.helptext import plain_help
from tacoq_cli.options import JsonOption, RelayOption, RelayUrlDeprecated, TokenOption
from tacoq_cli.relay_client import open_client, parse_task_id

if TYPE_CHECKING:
    from tacoq.relay.client import SyncRelayClient
    from tacoq.relay.dead_letter_models import DeadLetterOut

__all__ = ["app", "register"]

#: Ids per requeue request (the relay takes up to 500).
REQUEUE_CHUNK = 200

app = typer.Typer(
    help="""The dead letters the relay keeps: list, show, requeue, purge.

    Examples:

    \b
      tacoq dlq list --reason "unknown task kind"
      tacoq dlq requeue --origin worker:images
      tacoq dlq purge --all --yes
    """,
    no_args_is_help=True,
)

OriginOption = Annotated[
    str | None,
    typer.Option(help="Only those from this queue: relay, or worker:<kind>.", metavar="QUEUE"),
]
ReasonOption = Annotated[
    str | None, typer.Option(help="Only those whose reason contains TEXT.", metavar="TEXT")
]
TaskOption = Annotated[
    str | None, typer.Option("--task-id", help="Only those of this task.", metavar="ID")
]


def _matching(
    client: SyncRelayClient,
    origin: str | None,
    reason: str | None,
    task_id: str | None,
    limit: int | None,
) -> list[DeadLetterOut]:
    """Every dead letter matching the filters (at most ``limit``), following the cursor."""
    found: list[DeadLetterOut] = []
    cursor = None
    task = None if task_id is None else parse_task_id(task_id)
    while limit is None or len(found) < limit:
        page_size = 500 if limit is None else min(500, limit - len(found))
        page = client.dead_letters(
            origin=origin, reason=reason, task_id=task, limit=page_size, cursor=cursor
        )
        found += page.dead_letters
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return found


def _ids(texts: list[str]) -> list[UUID]:
    ids = []
    for text in texts:
        try:
            ids.append(UUID(text.strip()))
        except ValueError:
            raise ConfigError(f"{text!r} is not a dead letter id (expected a UUID)") from None
    return ids


@app.command("list")
def list_(
    ctx: typer.Context,
    origin: OriginOption = None,
    reason: ReasonOption = None,
    task_id: TaskOption = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="Show at most this many.")] = 50,
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """List dead letters, newest first: id, origin, count, task, reason.

    The table also shows when each was last seen; --json prints every field.

    Examples:

    \b
      tacoq dlq list
      tacoq dlq list --origin worker:images --limit 500 --json
    """
    with open_client(ctx, relay, token, relay_url) as client:
        found = _matching(client, origin, reason, task_id, limit)
    if json_output:
        print(json.dumps([letter.model_dump(mode="json") for letter in found], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(found)} dead letter(s)", title_justify="left")
    for column in ("id", "origin", "count", "last seen", "task", "reason"):
        table.add_column(column, overflow="fold")
    for letter in found:
        table.add_row(
            str(letter.id),
            letter.origin or "-",
            str(letter.count),
            letter.last_seen,
            str(letter.task_id or "-"),
            letter.reason,
        )
    Console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id.")],
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """Show one dead letter: why, where from, its headers and its body.

    Examples:

    \b
      tacoq dlq show $ID
      tacoq dlq show $ID --json
    """
    (wanted,) = _ids([letter_id])
    with open_client(ctx, relay, token, relay_url) as client:
        letter = client.dead_letter(wanted)
    if letter is None:  # a well-formed id the relay does not know: a runtime error (exit 1)
        from tacoq.errors import RelayError

        raise RelayError(
            f"dead letter {wanted} is not in the relay's store", status=404, error_type="not_found"
        )
    if json_output:
        print(letter.model_dump_json())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dead letter {letter.id}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in (
        ("reason", letter.reason),
        ("origin", letter.origin or "-"),
        ("task", str(letter.task_id or "-")),
        ("count", str(letter.count)),
        ("first seen", letter.first_seen),
        ("last seen", letter.last_seen),
        ("content type", letter.content_type),
        ("body", f"{letter.body_size:,} bytes" + ("" if letter.body_complete else " (cut)")),
    ):
        table.add_row(name, value)
    for name, value in letter.headers.items():
        table.add_row(f"header {name}", value)
    if letter.body is not None:
        data = letter.body.data
        text = data if isinstance(data, str) else json.dumps(data)
        table.add_row(f"body ({letter.body.encoding})", text[:2000])
    Console().print(table)


@app.command()
def requeue(
    ctx: typer.Context,
    letter_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Dead letters to requeue.")
    ] = None,
    origin: OriginOption = None,
    reason: ReasonOption = None,
    task_id: TaskOption = None,
    every: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """Requeue dead letters into the queues they came from, each once.

    Each goes back with a fresh count. Give ids, or filters (--origin, --reason, --task-id),
    or --all. Exits 1 when some could not be requeued (each is named with why).

    Examples:

    \b
      tacoq dlq requeue $ID
      tacoq dlq requeue --reason "unknown task kind"
      tacoq dlq requeue --all
    """
    chosen = _ids(letter_ids or [])
    filtered = origin is not None or reason is not None or task_id is not None
    if bool(chosen) + filtered + every != 1:
        raise ConfigError("give dead letter ids, or filters (--origin, --reason, --task-id), "
                          "or --all; one of the three")  # fmt: skip
    with open_client(ctx, relay, token, relay_url) as client:
        if not chosen:
            chosen = [letter.id for letter in _matching(client, origin, reason, task_id, None)]
        total, requeued, skipped = len(chosen), 0, []
        for start in range(0, total, REQUEUE_CHUNK):
            result = client.requeue_dead_letters(chosen[start : start + REQUEUE_CHUNK])
            requeued += len(result.requeued)
            skipped += result.skipped
            typer.echo(f"requeued {requeued:,} of {total:,} ({len(skipped):,} skipped)")
    for item in skipped[:20]:
        typer.echo(f"  skipped {item.id}: {item.reason}", err=True)
    if len(skipped) > 20:
        typer.echo(f"  ... and {len(skipped) - 20:,} more skipped", err=True)
    if skipped:
        raise typer.Exit(1)


@app.command()
def purge(
    ctx: typer.Context,
    letter_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Dead letters to delete.")
    ] = None,
    origin: OriginOption = None,
    reason: ReasonOption = None,
    task_id: TaskOption = None,
    every: Annotated[bool, typer.Option("--all", help="Delete every dead letter.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete them.")] = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """Delete dead letters for good: ids, filters or --all (with --yes).

    Examples:

    \b
      tacoq dlq purge $ID --yes
      tacoq dlq purge --origin relay --yes
      tacoq dlq purge --all --yes
    """
    chosen = _ids(letter_ids or [])
    filtered = origin is not None or reason is not None or task_id is not None
    if bool(chosen) + filtered + every != 1:
        raise ConfigError("give dead letter ids, or filters (--origin, --reason, --task-id), "
                          "or --all; one of the three")  # fmt: skip
    if not yes:
        raise ConfigError("purging deletes dead letters for good: add --yes")
    with open_client(ctx, relay, token, relay_url) as client:
        if chosen:
            deleted = sum(client.delete_dead_letter(letter) for letter in chosen)
        else:
            task = None if task_id is None else parse_task_id(task_id)
            deleted = client.purge_dead_letters(
                origin=origin, reason=reason, task_id=task, everything=every
            )
    typer.echo(f"deleted {deleted:,} dead letter(s)")


def register(root: typer.Typer) -> None:
    """Add ``tacoq dlq`` to ``root``."""
    root.add_typer(plain_help(app), name="dlq")
