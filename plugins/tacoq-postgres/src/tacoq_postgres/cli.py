"""``tacoq postgres migrate|stats``: the plugin's command group.

Built by the ``tacoq_cli_group`` hook. typer and the CLI's shared options
(``tacoq_cli.options``) are imported when the group is built, which only the ``tacoq`` CLI does;
psycopg and rich only inside the commands, so ``tacoq --help`` stays fast.
Mistakes and outages raise TacoQ errors, which the CLI prints as one ``error:`` line.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from tacoq.config import resolve_namespace, resolve_store_url
from tacoq.errors import ConfigError
from tacoq_cli.options import JsonOption, NamespaceOption, StoreOption, deprecated_spelling
from tacoq_postgres.settings import SCHEMES, PostgresSettings, parse_store_url

__all__ = ["build_group"]

#: ``--url``, the old spelling of ``--store`` (hidden; warns; removed in the next release).
UrlDeprecated = Annotated[
    str | None,
    typer.Option(
        "--url",
        hidden=True,
        callback=deprecated_spelling("--url", "--store"),
        show_default=False,
    ),
]


def _settings(store: str | None, url: str | None, namespace: str | None) -> PostgresSettings:
    if store and url:
        raise ConfigError("give --store, not both --store and its old spelling --url")
    resolved = resolve_store_url(store or url)
    scheme = resolved.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            "tacoq postgres needs a postgresql:// store URL: pass --store or set TACOQ_STORE_URL"
        )
    return parse_store_url(resolved, resolve_namespace(namespace))


def migrate(
    store: StoreOption = None, namespace: NamespaceOption = None, url: UrlDeprecated = None
) -> None:
    """Create or upgrade the store's schema (idempotent; safe when run twice at once).

    Examples:

    \b
      tacoq postgres migrate --store postgresql://db/tacoq
      tacoq postgres migrate -n staging
    """
    from tacoq_postgres.report import run_migrations

    settings = _settings(store, url, namespace)
    applied, version = asyncio.run(run_migrations(settings))
    for name in applied:
        typer.echo(f"applied {name}")
    state = "migrated to" if applied else "already at"
    typer.echo(f"schema {settings.schema} {state} version {version}")


def stats(
    store: StoreOption = None,
    namespace: NamespaceOption = None,
    json_output: JsonOption = False,
    url: UrlDeprecated = None,
) -> None:
    """Tasks by status and kind, the oldest pending task, expired tasks awaiting cleanup.

    Examples:

    \b
      tacoq postgres stats --store postgresql://db/tacoq
      tacoq postgres stats -n staging --json
    """
    from tacoq.model.task import utcnow
    from tacoq_postgres.report import collect

    report = asyncio.run(collect(_settings(store, url, namespace), utcnow()))
    if json_output:
        typer.echo(json.dumps(report.as_json()))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"schema {report.schema} (version {report.version})")
    for column in ("status", "task kind", "tasks"):
        table.add_column(column, justify="right" if column == "tasks" else "left")
    for status, kind, count in report.by_status_kind:
        table.add_row(status, kind, str(count))
    table.add_section()
    summary: dict[str, Any] = report.as_json()
    table.add_row("total", "", str(report.total))
    table.add_row("oldest pending", "", str(summary["oldest_pending"] or "-"))
    table.add_row("expired, awaiting cleanup", "", str(report.expired_waiting))
    Console().print(table)


def build_group() -> typer.Typer:
    """The ``tacoq postgres`` group."""
    group = typer.Typer(
        help="The Postgres store: migrations and statistics.\n\n"
        "Examples:\n\n\b\n  tacoq postgres migrate\n  tacoq postgres stats --json",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )
    group.command("migrate")(migrate)
    group.command("stats")(stats)
    return group
