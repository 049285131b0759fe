"""``tacoq publish KIND``: publish a task through the relay's HTTP API.

The input is JSON (``--input '{"w": 10}'``); the relay publishes it to the broker, idempotent
by ``--id``. Prints the task id, or with ``--wait`` the task once it completed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tacoq.errors import ConfigError
from tacoq_cli.commands.task import RelayUrlOption, TokenOption, open_client, parse_task_id

__all__ = ["publish", "register"]


def publish(
    task_kind: Annotated[str, typer.Argument(metavar="KIND", help="The task kind to run.")],
    worker_kind: Annotated[
        str, typer.Option("--worker-kind", help="The kind of worker that runs it.")
    ],
    input_json: Annotated[
        str, typer.Option("--input", help="The input as JSON, e.g. '{\"w\": 10}'.")
    ] = "null",
    priority: Annotated[int, typer.Option(min=0, max=255, help="0-255, higher first.")] = 0,
    ttl: Annotated[
        int | None,
        typer.Option(min=0, help="Seconds the record lives after completion (default: relay's)."),
    ] = None,
    task_id: Annotated[
        str | None, typer.Option("--id", help="Choose the task id (a UUID); safe to repeat.")
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(min=0, help="Wait up to this many seconds and show the task."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    relay_url: RelayUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Publish a task over the relay's HTTP API and print its id."""
    import json

    try:
        value = json.loads(input_json)
    except ValueError as exc:
        raise ConfigError(f"--input is not valid JSON: {exc}") from None
    tid = parse_task_id(task_id) if task_id is not None else None
    with open_client(relay_url, token) as client:
        published = client.publish(
            task_kind, value, worker_kind=worker_kind, priority=priority, ttl=ttl, id=tid
        )
        found = client.wait(published, wait) if wait else None
    if found is not None:
        from tacoq_cli.commands.task import show_task

        show_task(found, json_output=json_output)
    elif json_output:
        print(json.dumps({"id": str(published)}))
    else:
        print(published)


def register(app: typer.Typer) -> None:
    """Add ``tacoq publish`` to ``app``."""
    app.command("publish")(publish)
