"""``tacoq demo``: the whole system in one process (or across real services with URLs)."""

from __future__ import annotations

from typing import Annotated

import typer

from tacoq.config import ENV_BROKER_URL, ENV_STORE_URL
from tacoq_cli.options import (
    ENV_CONCURRENCY,
    JsonOption,
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
)

__all__ = ["demo", "register"]


def demo(
    tasks: Annotated[int, typer.Option(min=1, help="How many tasks to publish.")] = 300,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            envvar=ENV_BROKER_URL,
            metavar="URL",
            help="The broker's URL (default: in-process memory://).",
            show_default=False,
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            envvar=ENV_STORE_URL,
            metavar="URL",
            help="The store's URL (default: in-process memory://).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            envvar="TACOQ_DEMO_NAMESPACE",
            metavar="NAME",
            help="The namespace of queues, exchanges and tables (default: one of the demo's own).",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            envvar=ENV_CONCURRENCY,
            min=1,
            metavar="N",
            help="How many tasks the demo worker runs at once.",
        ),
    ] = 64,
    json_output: JsonOption = False,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Keep the namespace's queues and tables after the run (to look at them).",
            show_default=False,
        ),
    ] = False,
    log_level: LogLevelOption = LogLevel.WARNING,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run a publisher, a worker and a relay on a few hundred tasks, and summarise them.

    Without URLs everything runs in this process; with --broker and --store it runs across
    those services, in a namespace of its own, which it removes when it ends (success, failure
    or Ctrl-C) unless --keep, or unless that namespace existed before. It refuses (exit 1) a
    namespace another relay serves. Exits 0 only when every task ended as expected and the
    demo's relay stored each one's completion (the summary counts those it missed).

    Examples:

    \b
      tacoq demo
      tacoq demo --tasks 2000 --json
      tacoq demo --broker amqp://mq/ --store postgresql://db/
      tacoq demo --keep --namespace demo-look \\
          --broker amqp://mq/ --store postgresql://db/
    """
    # Imported here so `tacoq --help` never loads the worker, publisher and relay.
    from tacoq_cli.demo import run_demo
    from tacoq_cli.logs import configure_logging

    # Below warning, lines get a timestamp and the logger's name, as the worker's and relay's.
    configure_logging(log_level, log_format, verbose=log_level in (LogLevel.DEBUG, LogLevel.INFO))
    code = run_demo(
        tasks=tasks,
        broker_url=broker,
        store_url=store,
        namespace=namespace,
        concurrency=concurrency,
        json_output=json_output,
        keep=keep,
    )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``tacoq demo`` to ``app``."""
    app.command("demo")(demo)
