"""The ``tacoq`` command's option vocabulary: one spelling, one environment variable and one
help text per setting, shared by every command that takes it (plugin groups included).

A command declares ``broker: BrokerOption = None`` instead of its own ``typer.Option``, so
``--broker``, ``--store``, ``--namespace/-n``, ``--relay``, ``--token``, ``--json``,
``-c/--concurrency``, ``-l/--log-level`` and ``--log-format`` mean the same everywhere and always
come after the command's name (docs/cli.md, "Options"). Every setting can also be given in its
environment variable, which its help shows; per-call values (what to publish, filters,
``--json``, ``--yes``) have none, on purpose.

Older spellings keep working for one release through :func:`deprecated_spelling`, which prints
one ``warning:`` line naming the new spelling.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from tacoq.config import ENV_BROKER_URL, ENV_NAMESPACE, ENV_RELAY_URL, ENV_STORE_URL
from tacoq_cli.errors import print_warning

__all__ = [
    "ENV_CONCURRENCY",
    "ENV_LOG_FORMAT",
    "ENV_LOG_LEVEL",
    "ENV_RELAY_TOKEN",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PER_CALL_OPTIONS",
    "BrokerOption",
    "ConcurrencyOption",
    "JsonOption",
    "LogFormat",
    "LogFormatOption",
    "LogLevel",
    "LogLevelOption",
    "NamespaceOption",
    "RelayOption",
    "RelayUrlDeprecated",
    "StoreOption",
    "TokenOption",
    "deprecated_spelling",
]

ENV_RELAY_TOKEN = "TACOQ_RELAY_TOKEN"
ENV_LOG_LEVEL = "TACOQ_LOG_LEVEL"
ENV_LOG_FORMAT = "TACOQ_LOG_FORMAT"
ENV_CONCURRENCY = "TACOQ_CONCURRENCY"


class LogLevel(enum.StrEnum):
    """The levels ``--log-level`` accepts, from the most records to the fewest."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    """The formats ``--log-format`` accepts."""

    TEXT = "text"
    JSON = "json"


#: The options that are per-call values rather than settings, and so have no environment
#: variable (docs/cli.md, "Options"): what to publish or show, filters and paging, output form,
#: confirmations. Every other option of every command has one (cli/tests/test_help.py).
PER_CALL_OPTIONS = frozenset(
    {
        # what to publish, and its task options
        "--input",
        "--worker-kind",
        "--id",
        "--priority",
        "--ttl",
        "--countdown",
        "--eta",
        # waiting for a task
        "--wait",
        "--timeout",
        # filters and paging
        "--status",
        "--task-kind",
        "--task-id",
        "--origin",
        "--reason",
        "--kind",
        "--limit",
        "--cursor",
        "--scan",
        "--all",
        "--count",
        # how much work a one-off command does
        "--tasks",
        # output and confirmation
        "--json",
        "--yes",
        "--force",
        "--keep",
    }
)

#: The levels ``--log-level`` accepts, as text.
LOG_LEVELS = tuple(level.value for level in LogLevel)
#: The formats ``--log-format`` accepts, as text.
LOG_FORMATS = tuple(fmt.value for fmt in LogFormat)


def deprecated_spelling(old: str, new: str) -> Any:
    """A click callback for a hidden old spelling: warns once (``old`` is deprecated, use
    ``new``) when it was given, and passes the value through."""

    def warn(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        source = ctx.get_parameter_source(param.name or "")
        if source is not None and source.name == "COMMANDLINE":
            print_warning(f"{old} is deprecated and will be removed in the next release: use {new}")
        return value

    return warn


BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        envvar=ENV_BROKER_URL,
        metavar="URL",
        help="The broker's URL, such as amqp://host/.",
        show_default=False,
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=ENV_STORE_URL,
        metavar="URL",
        help="The store's URL, such as postgresql://host/db.",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        envvar=ENV_NAMESPACE,
        metavar="NAME",
        help="The namespace of queues, exchanges and tables (default: tacoq).",
        show_default=False,
    ),
]
RelayOption = Annotated[
    str | None,
    typer.Option(
        "--relay",
        envvar=ENV_RELAY_URL,
        metavar="URL",
        help="The relay's HTTP address (default: http://127.0.0.1:8080).",
        show_default=False,
    ),
]
#: ``--relay-url``, the old spelling of ``--relay`` (hidden; warns).
RelayUrlDeprecated = Annotated[
    str | None,
    typer.Option(
        "--relay-url",
        hidden=True,
        callback=deprecated_spelling("--relay-url", "--relay"),
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=ENV_RELAY_TOKEN,
        metavar="TOKEN",
        help="The relay's bearer token (an option shows in ps: prefer the variable).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of a table.", show_default=False)
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "-c",
        envvar=ENV_CONCURRENCY,
        min=1,
        metavar="N",
        help="How many tasks run at once (default: the app's).",
        show_default=False,
    ),
]
LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        "--log-level",
        "-l",
        envvar=ENV_LOG_LEVEL,
        case_sensitive=False,
        help="The least severe log records written.",
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        envvar=ENV_LOG_FORMAT,
        case_sensitive=False,
        help="text: one readable line per record; json: one JSON object per line.",
    ),
]
