"""The ``tacoq rabbit`` command group: declare, status and the dead-letter queue.

Mounted by the ``tacoq`` CLI through the ``tacoq_cli_group`` hook. typer is imported here (this
module is only imported by that hook); pika only inside the commands. Every failure is a
:class:`~tacoq.errors.TacoqError`, which the CLI prints as one ``error:`` line without a
traceback or a password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from tacoq.config import resolve_namespace
from tacoq.errors import ConfigError
from tacoq_cli.options import BrokerOption, JsonOption, NamespaceOption, deprecated_spelling

if TYPE_CHECKING:
    from tacoq_rabbit.admin import RabbitAdmin

__all__ = ["DEFAULT_URL", "app"]

#: The URL used when neither ``--broker`` nor ``TACOQ_BROKER_URL`` is given.
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"

app = typer.Typer(
    help="Operate TacoQ's RabbitMQ topology: declare queues, show status, manage dead letters."
    "\n\nExamples:\n\n\b\n  tacoq rabbit declare -k images\n  tacoq rabbit status --json",
    no_args_is_help=True,
    add_completion=False,
)
dlq = typer.Typer(
    help="Deprecated: the RabbitMQ dead-letter queue (the relay now takes dead letters into its "
    "store; use `tacoq dlq`).\n\nExamples:\n\n\b\n  tacoq dlq list\n  tacoq rabbit dlq list",
    no_args_is_help=True,
)
app.add_typer(dlq, name="dlq")

#: Printed by every ``tacoq rabbit dlq`` command (removed in the next release).
DLQ_DEPRECATION = (
    "warning: `tacoq rabbit dlq` is deprecated and will be removed in the next release: a "
    "running relay takes every dead letter from this queue into its store; use `tacoq dlq "
    "list|show|requeue|purge`"
)


@dlq.callback()
def _deprecated() -> None:
    """Deprecated: use ``tacoq dlq`` (the relay's store owns dead letters)."""
    typer.echo(DLQ_DEPRECATION, err=True)


@dataclass(frozen=True, slots=True)
class Target:
    """The broker URL and namespace the group's commands work on."""

    url: str
    namespace: str


KindOption = Annotated[
    list[str] | None,
    typer.Option("--kind", "-k", help="A worker kind (repeatable).", metavar="KIND"),
]


@app.callback()
def _group(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            hidden=True,
            callback=deprecated_spelling(
                "`tacoq rabbit --url URL COMMAND`", "`tacoq rabbit COMMAND --broker URL`"
            ),
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            hidden=True,
            callback=deprecated_spelling(
                "`tacoq rabbit -n NAME COMMAND`", "`tacoq rabbit COMMAND -n NAME`"
            ),
        ),
    ] = None,
) -> None:
    """Operate TacoQ's RabbitMQ topology over plain AMQP (no management plugin needed)."""
    ctx.obj = _Deprecated(url, namespace)


@dataclass(frozen=True, slots=True)
class _Deprecated:
    """What the group's old options (before the command's name) said, if anything."""

    url: str | None
    namespace: str | None


def _target(ctx: typer.Context, broker: str | None, namespace: str | None) -> Target:
    """The broker URL and namespace of a command: its own options (or their environment
    variables), else the group's deprecated ones, else the default URL."""
    old: _Deprecated = ctx.find_object(_Deprecated) or _Deprecated(None, None)
    if _from_command_line(ctx, "broker") or old.url is None:
        chosen = broker or DEFAULT_URL
    else:
        chosen = old.url
    if old.namespace is not None and not _from_command_line(ctx, "namespace"):
        namespace = old.namespace
    return Target(chosen, resolve_namespace(namespace))


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


@contextmanager
def _admin(target: Target) -> Iterator[RabbitAdmin]:
    """A connected admin; pika errors become one-line ``RabbitUnreachable`` errors."""
    from tacoq_rabbit.admin import RabbitAdmin
    from tacoq_rabbit.pika_link import PIKA_CONNECTION_ERRORS, RabbitUnreachable, describe

    admin = RabbitAdmin(target.url, target.namespace)
    try:
        yield admin
    except PIKA_CONNECTION_ERRORS as exc:
        raise RabbitUnreachable(
            f"RabbitMQ at {admin.settings.display_url} failed: {describe(exc)}"
        ) from None
    finally:
        admin.close()


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


@app.command()
def declare(
    ctx: typer.Context,
    broker: BrokerOption = None,
    namespace: NamespaceOption = None,
    kind: KindOption = None,
) -> None:
    """Declare the namespace's exchanges and queues, plus each --kind's worker queue.

    Idempotent: declaring what exists changes nothing.

    Examples:

    \b
      tacoq rabbit declare --broker amqp://mq/ -k images
      TACOQ_NAMESPACE=staging tacoq rabbit declare
    """
    from tacoq_rabbit.admin import kinds_of

    target = _target(ctx, broker, namespace)
    with _admin(target) as admin:
        queues = admin.declare(kinds_of(kind))
        typer.echo(f"declared {len(queues)} queues in namespace {admin.namespace}:")
        for name in queues:
            typer.echo(f"  {name}")


@app.command()
def status(
    ctx: typer.Context,
    broker: BrokerOption = None,
    namespace: NamespaceOption = None,
    kind: KindOption = None,
    as_json: JsonOption = False,
    scan: Annotated[
        int, typer.Option(min=0, help="Dead letters browsed to count them by origin.")
    ] = 10_000,
) -> None:
    """Per queue: depth (ready messages), consumers, dead-lettered count.

    Without a management API queues cannot be listed: shown are the relay's queue, the
    dead-letter queue, existing delay rungs, the --kind worker queues and every worker kind
    that has dead letters.

    Examples:

    \b
      tacoq rabbit status --broker amqp://mq/ -k images
      tacoq rabbit status -n staging --json
    """
    from tacoq_rabbit.admin import kinds_of

    target = _target(ctx, broker, namespace)
    with _admin(target) as admin:
        rows = admin.status(kinds_of(kind), scan=scan)
    if as_json:
        document = {"namespace": target.namespace, "queues": [row.as_dict() for row in rows]}
        typer.echo(json.dumps(document, indent=2))
        return
    _table(
        f"RabbitMQ queues of namespace {target.namespace}",
        ["queue", "role", "depth", "consumers", "dead-lettered"],
        [
            [
                row.name,
                row.role,
                _cell(row.depth) if row.exists else "missing",
                _cell(row.consumers),
                _cell(row.dead_lettered),
            ]
            for row in rows
        ],
    )


@dlq.command("list")
def dlq_list(
    ctx: typer.Context,
    broker: BrokerOption = None,
    namespace: NamespaceOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many dead letters.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Show dead letters (reason, origin, task id, event, size) without removing them.

    Examples:

    \b
      tacoq rabbit dlq list --limit 10
      tacoq dlq list   (use this instead)
    """
    target = _target(ctx, broker, namespace)
    with _admin(target) as admin:
        letters = admin.dead_letters(limit)
    if as_json:
        typer.echo(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return
    if not letters:
        typer.echo(f"no dead letters in namespace {target.namespace}")
        return
    _table(
        f"Dead letters of namespace {target.namespace} (first {len(letters)})",
        ["reason", "origin", "task id", "event", "bytes"],
        [[d.reason, d.origin, _cell(d.task_id), _cell(d.event), str(d.size)] for d in letters],
    )


@dlq.command("requeue")
def dlq_requeue(
    ctx: typer.Context,
    broker: BrokerOption = None,
    namespace: NamespaceOption = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many (default: all).")
    ] = None,
) -> None:
    """Republish dead letters to the queue they came from (confirmed), then remove them.

    Examples:

    \b
      tacoq rabbit dlq requeue --limit 10
      tacoq dlq requeue --all   (use this instead)
    """
    target = _target(ctx, broker, namespace)
    with _admin(target) as admin:
        result = admin.requeue(limit)
    typer.echo(f"requeued {result.requeued} dead letters")
    if result.skipped:
        typer.echo(f"left {result.skipped} without a known origin in the dead-letter queue")


@dlq.command("purge")
def dlq_purge(
    ctx: typer.Context,
    broker: BrokerOption = None,
    namespace: NamespaceOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every dead letter of the namespace.

    Examples:

    \b
      tacoq rabbit dlq purge --yes
      tacoq dlq purge --all --yes   (use this instead)
    """
    target = _target(ctx, broker, namespace)
    if not yes:
        if not os.isatty(0):
            raise ConfigError("refusing to purge without a terminal to confirm: pass --yes")
        typer.confirm(f"Delete every dead letter of namespace {target.namespace}?", abort=True)
    with _admin(target) as admin:
        count = admin.purge()
    typer.echo(f"purged {count} dead letters")
