"""``tacoq publish KIND``: publish a task through the relay's HTTP API.

The input is JSON (``--input '{"w": 10}'``); the relay publishes it to the broker, idempotent
by ``--id``. Prints the task id, or with ``--wait`` the task once it completed.

Every task option (:class:`tacoq.model.options.TaskOptions`) is an option of this command,
made from the option's declaration: ``--priority``, ``--ttl``, ``--id``, ``--countdown``,
``--eta`` (and any option added there), each parsed from its text form
(:meth:`~tacoq.model.options.TaskOptions.from_text`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Annotated, Any

import typer

from tacoq.errors import ConfigError
from tacoq.model.options import TaskOptions
from tacoq_cli.commands.task import RelayUrlOption, TokenOption, open_client

__all__ = ["publish", "register"]


def _publish(
    task_kind: Annotated[str, typer.Argument(metavar="KIND", help="The task kind to run.")],
    worker_kind: Annotated[
        str, typer.Option("--worker-kind", help="The kind of worker that runs it.")
    ],
    input_json: Annotated[
        str, typer.Option("--input", help="The input as JSON, e.g. '{\"w\": 10}'.")
    ] = "null",
    wait: Annotated[
        float | None,
        typer.Option(min=0, help="Wait up to this many seconds and show the task."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    relay_url: RelayUrlOption = None,
    token: TokenOption = None,
    **option_texts: str | None,
) -> None:
    """Publish a task over the relay's HTTP API and print its id."""
    import json

    try:
        value = json.loads(input_json)
    except ValueError as exc:
        raise ConfigError(f"--input is not valid JSON: {exc}") from None
    given = {name: text for name, text in option_texts.items() if text is not None}
    options = TaskOptions.from_text({"worker_kind": worker_kind, **given})
    with open_client(relay_url, token) as client:
        published = client.publish(task_kind, value, options=options)
        found = client.wait(published, wait) if wait else None
    if found is not None:
        from tacoq_cli.commands.task import show_task

        show_task(found, json_output=json_output)
    elif json_output:
        print(json.dumps({"id": str(published)}))
    else:
        print(published)


def _option_parameters() -> list[inspect.Parameter]:
    """One ``--name TEXT`` option per task option but ``worker_kind`` (required above)."""
    parameters = []
    for field in dataclasses.fields(TaskOptions):
        if field.name == "worker_kind":
            continue
        flag = "--" + field.name.replace("_", "-")
        option = typer.Option(flag, help=field.metadata["help"], show_default=False)
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


#: The ``tacoq publish`` command.
publish = _command()


def register(app: typer.Typer) -> None:
    """Add ``tacoq publish`` to ``app``."""
    app.command("publish")(publish)
