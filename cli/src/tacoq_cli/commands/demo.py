"""``tacoq demo``: the whole system in one process (or across real services with URLs)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["demo", "register"]


def demo(
    tasks: Annotated[int, typer.Option(min=1, help="How many tasks to publish.")] = 300,
    broker: Annotated[
        str | None,
        typer.Option(help="Broker URL (default: TACOQ_BROKER_URL, else in-process memory://)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Store URL (default: TACOQ_STORE_URL, else in-process memory://)."),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(help="Namespace for queues and exchanges (default: one of the demo's own)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="How many tasks the demo worker runs at once.")
    ] = 64,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
) -> None:
    """Run a publisher, a worker and a relay on a few hundred tasks, and summarise them."""
    # Imported here so `tacoq --help` never loads the worker, publisher and relay.
    from tacoq_cli.demo import run_demo

    code = run_demo(
        tasks=tasks,
        broker_url=broker,
        store_url=store,
        namespace=namespace,
        concurrency=concurrency,
        json_output=json_output,
    )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``tacoq demo`` to ``app``."""
    app.command("demo")(demo)
