"""The ``tacoq`` application: core commands, plugin command groups, and error handling.

``main()`` is the console-script entry point. It builds the app (mounting plugin groups),
runs it, and turns every TacoQ error and usage mistake into one ``error:`` line on stderr with
a non-zero exit code (2 for usage and configuration). Unexpected exceptions are bugs and keep
their traceback, but never with local variables (they could hold URLs with passwords).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from tacoq.errors import TacoqError
from tacoq_cli.commands import (
    demo,
    dlq,
    namespace,
    plugins,
    publish,
    relay,
    task,
    version,
    worker,
    workers,
)
from tacoq_cli.commands.version import print_version
from tacoq_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    exit_code_for,
    print_error,
    print_warning,
)
from tacoq_cli.groups import mount_plugin_groups
from tacoq_cli.helptext import CONTEXT_SETTINGS
from tacoq_cli.logs import configure_logging

if TYPE_CHECKING:
    from tacoq.plugins import PluginHost

__all__ = ["build_app", "main", "run"]

PROG_NAME = "tacoq"


def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=print_version,
            is_eager=True,
            help="Print the versions of tacoq and tacoq-core, then exit.",
        ),
    ] = False,
) -> None:
    """TacoQ: a task queue built from plugins.

    Run workers (`tacoq worker`) and the relay (`tacoq relay`), publish tasks and follow them
    (`tacoq task`), see the workers online and their task kinds (`tacoq workers`, `tacoq
    kinds`), handle dead letters (`tacoq dlq`), delete a namespace (`tacoq namespace`),
    try it all in one process (`tacoq demo`), and see the installed plugins (`tacoq plugins`)
    and the command groups they add. Every setting can come from its environment variable,
    shown in each command's --help; docs/cli.md lists the commands and their exit codes.

    Examples:

    \b
      tacoq demo
      tacoq worker myapp.tasks:worker -c 8
      tacoq relay --broker amqp://mq/ --store postgresql://db/
      tacoq task publish resize --worker-kind images --wait 9
    """
    if ctx.invoked_subcommand is None:
        # `tacoq` alone is a request for help, not a mistake: show it and exit 0.
        typer.echo(ctx.get_help())
        raise typer.Exit()


def build_app(host: PluginHost | None = None) -> typer.Typer:
    """The ``tacoq`` app with every core command and each plugin's command group.

    ``host`` defaults to the process-wide plugin host. When the plugins cannot be loaded at
    all, a warning is printed and only the core commands are mounted (those that need plugins
    then report the problem themselves).
    """
    app = typer.Typer(
        name=PROG_NAME,
        invoke_without_command=True,
        rich_markup_mode=None,
        pretty_exceptions_show_locals=False,
        context_settings=CONTEXT_SETTINGS,
    )
    app.callback()(_root)
    worker.register(app)
    demo.register(app)
    plugins.register(app)
    relay.register(app)
    publish.register(app)
    task.register(app)
    dlq.register(app)
    workers.register(app)
    namespace.register(app)
    version.register(app)
    if host is None:
        from tacoq.plugins import get_plugin_host

        try:
            host = get_plugin_host()
        except TacoqError as exc:
            print_warning(f"plugin command groups were not loaded: {exc}")
            return app
    mount_plugin_groups(app, host)
    return app


def run(argv: Sequence[str] | None = None, host: PluginHost | None = None) -> int:
    """Run ``tacoq`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    A command that calls ``sys.exit`` (``tacoq worker`` returns its runner's code that way)
    raises ``SystemExit`` through this function.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    try:
        app = build_app(host)
        result = app(args=args, prog_name=PROG_NAME, standalone_mode=False)
    except TacoqError as exc:
        print_error(str(exc))
        return exit_code_for(exc)
    except typer.TyperException as exc:  # click's usage errors: bad options and arguments
        if type(exc).__name__ == "NoArgsIsHelpError":  # `tacoq dlq` alone asks for help
            print(exc.format_message())
            return 0
        print_error(_usage_message(exc))
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("", file=sys.stderr)
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


def _usage_message(exc: typer.TyperException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and exc.exit_code == EXIT_USAGE:
        message += f" (see `{ctx.command_path} --help`)"
    return message


def main() -> NoReturn:
    """Console-script entry point for ``tacoq``."""
    sys.exit(run())
