"""``tacoq task publish KIND`` (and its alias ``tacoq publish KIND``): publish a task through
the relay's HTTP API.

The input is JSON (``--input '{"w": 10}'``); the relay publishes it to the broker, idempotent
by ``--id``. Prints the task id, or with ``--wait`` the task once it completed, and then exits
as every wait does (:func:`tacoq_cli.waiting.finish_wait`: 3 failed, 4 not done yet).

Every task option (:class:`tacoq.model.options.TaskOptions`) is an option of this command,
made from the option's declaration: ``--priority``, ``--ttl``, ``--id``, ``--countdown``,
``--eta`` (and any option added there), each parsed from its text form
(:meth:`~tacoq.model.options.TaskOptions.from_text`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import typer

from tacoq.errors import ConfigError
from tacoq.model.options import TaskOptions
from tacoq_cli.options import JsonOption, RelayOption, RelayUrlDeprecated, TokenOption
from tacoq_cli.relay_client import open_client
from tacoq_cli.waiting import finish_wait, seconds

__all__ = ["ALIAS_HELP", "publish", "register"]

#: How ``tacoq --help`` lists the alias ``tacoq publish``.
ALIAS_HELP = "Publish a task through the relay (alias of `tacoq task publish`)."
#: The metavar of a task option's command option, by the type of the option.
_METAVARS: dict[type, str] = {int: "N", float: "SECONDS", UUID: "UUID", datetime: "TIME"}


def _publish(
    ctx: typer.Context,
    task_kind: Annotated[
        str, typer.Argument(metavar="KIND", help="The task kind to run.", show_default=False)
    ],
    worker_kind: Annotated[
        str,
        typer.Option(
            "--worker-kind",
            metavar="KIND",
            help="The kind of worker that runs it.",
            show_default=False,
        ),
    ],
    input_json: Annotated[
        str,
        typer.Option(
            "--input",
            metavar="JSON",
            help="The input as JSON, e.g. '{\"w\": 10}' (default: null).",
            show_default=False,
        ),
    ] = "null",
    wait: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            callback=seconds,
            help="Wait up to this many seconds and show the task (exit 3 if it failed, 4 if "
            "it is not done).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    relay: RelayOption = None,
    relay_url: RelayUrlDeprecated = None,
    token: TokenOption = None,
    **option_texts: str | None,
) -> None:
    """Publish a task through the relay and print its id.

    Every task option is an option here (--priority, --ttl, --id, --countdown, --eta), in its
    text form. With --wait, the task is shown once it completed or the wait ended, and the
    exit code says which (0 done, 3 failed, 4 not done yet).

    Examples:

    \b
      tacoq task publish area --worker-kind shapes \\
        --input '{"w": 3, "h": 4}'
      tacoq task publish area --worker-kind shapes \\
        --input '{"w": 3, "h": 4}' --wait 30 --json
      tacoq task publish report --worker-kind mail \\
        --priority 9 --countdown 60
      tacoq publish area --worker-kind shapes --id $ID
    """
    import json

    try:
        value = json.loads(input_json)
    except ValueError as exc:
        raise ConfigError(f"--input is not valid JSON: {exc}") from None
    given = {name: text for name, text in option_texts.items() if text is not None}
    options = TaskOptions.from_text({"worker_kind": worker_kind, **given})
    with open_client(ctx, relay, token, relay_url) as client:
        published = client.publish(task_kind, value, options=options)
        found = None if wait is None else client.wait(published, wait)
    if found is not None and wait is not None:
        from tacoq_cli.task_views import show_task

        show_task(found, json_output=json_output)
        raise typer.Exit(finish_wait(found, wait))
    if json_output:
        print(json.dumps({"id": str(published)}))
    else:
        print(published)


def _metavar(field: dataclasses.Field[Any]) -> str:
    """``N``, ``SECONDS``, ``UUID`` or ``TIME``: what a task option's text stands for."""
    hint = typing.get_type_hints(TaskOptions)[field.name]
    kinds = [kind for kind in typing.get_args(hint) or (hint,) if kind is not type(None)]
    return _METAVARS.get(kinds[0], "TEXT") if kinds else "TEXT"


def _option_parameters() -> list[inspect.Parameter]:
    """One ``--name VALUE`` option per task option but ``worker_kind`` (required above)."""
    parameters = []
    for field in dataclasses.fields(TaskOptions):
        if field.name == "worker_kind":
            continue
        flag = "--" + field.name.replace("_", "-")
        option = typer.Option(
            flag, metavar=_metavar(field), help=field.metadata["help"], show_default=False
        )
        parameters.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[str | None, option],
            )
        )
    return parameters


def _command() -> Any:
    """``_publish`` with the task options spelled out in its signature, for typer."""

    @functools.wraps(_publish)
    def command(**kwargs: Any) -> None:
        _publish(**kwargs)

    own = inspect.signature(_publish, eval_str=True)
    fixed = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    fixed = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in fixed]
    at = [p.name for p in fixed].index("input_json") + 1  # the task options after --input
    parameters = fixed[:at] + _option_parameters() + fixed[at:]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    del command.__wrapped__  # typer must read the signature above, not _publish's
    return command


#: The ``tacoq task publish`` command (``tacoq publish`` too).
publish = _command()


def register(app: typer.Typer) -> None:
    """Add ``tacoq publish``, the alias of ``tacoq task publish``, to ``app``."""
    app.command("publish", short_help=ALIAS_HELP)(publish)
