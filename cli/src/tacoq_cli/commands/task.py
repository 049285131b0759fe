"""``tacoq task show|list|publish|wait``: tasks, through the relay's HTTP API.

``tacoq task ID`` is short for ``tacoq task show ID`` (:class:`TaskGroup` takes a first word
that is no subcommand as a task id). Every command takes ``--relay``/``TACOQ_RELAY_URL`` and
``--token``/``TACOQ_RELAY_TOKEN`` and prints a table, or with ``--json`` the relay's own JSON.
A command that waits for a task exits 3 when it failed and 4 when it had not completed in time
(:mod:`tacoq_cli.waiting`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from typer.core import TyperGroup

from tacoq.errors import ConfigError, RelayError
from tacoq.model.task import TaskStatus
from tacoq.model.wire import quoted
from tacoq_cli.commands.publish import publish
from tacoq_cli.helptext import plain_help
from tacoq_cli.options import JsonOption, RelayOption, RelayUrlDeprecated, TokenOption
from tacoq_cli.relay_client import kind_filter, open_client, parse_task_id
from tacoq_cli.task_views import print_task_page, show_task
from tacoq_cli.waiting import finish_wait, seconds

if TYPE_CHECKING:
    from typer._click import Command as ClickCommand
    from typer._click import Context as ClickContext

__all__ = ["MAX_PAGE", "TaskGroup", "app", "register", "show_task"]

#: The largest page ``tacoq task list`` asks for (the relay's ``MAX_LIST_LIMIT``).
MAX_PAGE = 500
#: How long ``tacoq task wait`` waits without ``--timeout``, in seconds.
DEFAULT_TIMEOUT = 60.0


class TaskGroup(TyperGroup):
    """``tacoq task``: a subcommand, or a task id as the first word, short for ``show ID``."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        """``tacoq task`` alone prints the help; options first (``tacoq task --json ID``)
        belong to ``show``."""
        if not args and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            ctx.exit(0)
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: ClickContext, args: list[str]
    ) -> tuple[str | None, ClickCommand | None, list[str]]:
        """The subcommand named by the first word; ``show`` with every word when the first is
        a task id; else one clear error naming both readings."""
        if args and self.get_command(ctx, args[0]) is None:
            try:
                UUID(args[0].strip())
            except ValueError:
                names = ", ".join(self.list_commands(ctx))
                raise ConfigError(
                    f"{quoted(args[0])} is neither a command of `{ctx.command_path}` ({names}) "
                    f"nor a task id (a UUID); see `{ctx.command_path} --help`"
                ) from None
            return "show", self.get_command(ctx, "show"), args
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=TaskGroup,
    help="""Publish, show, list and wait for tasks, through the relay.

    `tacoq task ID` is short for `tacoq task show ID`, and `tacoq publish` for `tacoq task
    publish`. A command that waits for a task exits 3 when the task failed and 4 when it had
    not completed in time, after printing it (docs/cli.md, "Exit codes").

    Examples:

    \b
      tacoq task publish area --worker-kind shapes \\
        --input '{"w": 3, "h": 4}' --wait 10
      tacoq task $ID --json
      tacoq task list --status RUNNING --worker-kind shapes
      tacoq task wait $ID --timeout 30
    """,
)

TaskIdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="The task's id (a UUID).", show_default=False)
]
WaitOption = Annotated[
    float | None,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        callback=seconds,
        help="Wait up to this many seconds for the task to complete (exit 3 if it failed, "
        "4 if it is not done).",
        show_default=False,
    ),
]
KindFilterOption = Annotated[str | None, typer.Option(metavar="KIND", show_default=False)]


@app.command("show")
def show(
    ctx: typer.Context,
    task_id: TaskIdArgument,
    wait: WaitOption = None,
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """Show one task: status, kinds, times, input, output or error.

    With --wait, the task is shown once it completed or the wait ended; the exit code then
    says which (0 done, 3 failed, 4 not done yet).

    Examples:

    \b
      tacoq task show $ID
      tacoq task $ID --wait 30 --json
    """
    tid = parse_task_id(task_id)
    with open_client(ctx, relay, token, relay_url) as client:
        found = client.get(tid) if wait is None else client.wait(tid, wait)
        if found is None:
            from tacoq.config import redact_url

            raise RelayError(
                f"task {tid} is not known to the relay at {redact_url(client.base_url)}",
                status=404,
                error_type="not_found",
            )
    show_task(found, json_output=json_output)
    if wait is not None:
        raise typer.Exit(finish_wait(found, wait))


def _status(value: str | None) -> TaskStatus | None:
    """``value`` of ``--status`` (in any case), or a ConfigError naming the statuses."""
    if value is None:
        return None
    try:
        return TaskStatus(value.strip().upper())
    except ValueError:
        names = ", ".join(status.value for status in TaskStatus)
        raise ConfigError(f"--status {quoted(value)} is not a status ({names})") from None


def _cursor(value: str | None) -> str | None:
    """``value`` of ``--cursor``, or a ConfigError when no relay made it."""
    if value is None:
        return None
    from tacoq.contracts.cursors import cursor_text_problem, decode_cursor

    problem = cursor_text_problem(value)
    try:
        if problem is None:
            decode_cursor(value)
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        raise ConfigError(f"--cursor {quoted(value)}: {problem} (pass a next_cursor as it came)")
    return value


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            metavar="STATUS",
            help="Only tasks in this status: PENDING, RUNNING or COMPLETED.",
            show_default=False,
        ),
    ] = None,
    task_kind: Annotated[
        str | None,
        typer.Option(metavar="KIND", help="Only tasks of this task kind.", show_default=False),
    ] = None,
    worker_kind: Annotated[
        str | None,
        typer.Option(metavar="KIND", help="Only tasks for this worker kind.", show_default=False),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            min=1, max=MAX_PAGE, metavar="N", help=f"Show at most this many (1-{MAX_PAGE})."
        ),
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option(
            metavar="CURSOR",
            help="Start after an earlier page: the cursor it printed.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """List tasks, newest first, filtered by status and kinds.

    One page at a time: the table shows each task's id, status, kinds, attempt and times
    (UTC), then the --cursor of the next page when there is one; --json prints the relay's
    page, {"tasks": [...], "next_cursor": ...}.

    Examples:

    \b
      tacoq task list
      tacoq task list --status COMPLETED --task-kind area \\
        --limit 200
      tacoq task list --worker-kind shapes --json
      tacoq task list --cursor MTc2NDc1NjAwMDAwMDAwMDo3ZjZj...
    """
    filters: dict[str, Any] = {
        "status": _status(status),
        "task_kind": kind_filter("--task-kind", task_kind),
        "worker_kind": kind_filter("--worker-kind", worker_kind),
    }
    after = _cursor(cursor)
    with open_client(ctx, relay, token, relay_url) as client:
        page = client.list(**filters, limit=limit, cursor=after)
    print_task_page(page, json_output=json_output)


app.command("publish")(publish)


@app.command("wait")
def wait(
    ctx: typer.Context,
    task_id: TaskIdArgument,
    timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            callback=seconds,
            help="Give up after this many seconds (exit 4).",
        ),
    ] = DEFAULT_TIMEOUT,
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
) -> None:
    """Wait for a task to complete, then show it; the exit code says how.

    0: it completed; 3: it failed; 4: it had not completed within --timeout. The relay
    answers the moment the task completes (a long-poll, no polling on a timer). An id the
    relay never saw is an error at the end of the wait: a task published straight to the
    broker may appear meanwhile.

    Examples:

    \b
      tacoq task wait $ID
      tacoq task wait $ID --timeout 600 --json
    """
    tid = parse_task_id(task_id)
    with open_client(ctx, relay, token, relay_url) as client:
        found = client.wait(tid, timeout)
    show_task(found, json_output=json_output)
    raise typer.Exit(finish_wait(found, timeout))


plain_help(app)


def register(root: typer.Typer) -> None:
    """Add ``tacoq task`` (with ``tacoq task ID`` as ``tacoq task show ID``) to ``root``."""
    root.add_typer(app, name="task")
