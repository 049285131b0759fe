"""``tacoq postgres migrate|stats``: the plugin's command group.

Built by the ``tacoq_cli_group`` hook. typer is imported when the group is built (only by the
``tacoq`` CLI); psycopg and rich only inside the commands, so ``tacoq --help`` stays fast.
Mistakes and outages raise TacoQ errors, which the CLI prints as one ``error:`` line.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from tacoq.config import resolve_namespace, resolve_store_url
from tacoq.errors import ConfigError
from tacoq_postgres.settings import SCHEMES, PostgresSettings, parse_store_url

__all__ = ["build_group"]

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Postgres store URL (default: TACOQ_STORE_URL)."),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(help="Namespace whose schema to use (default: TACOQ_NAMESPACE, else tacoq)."),
]


def _settings(url: str | None, namespace: str | None) -> PostgresSettings:
    resolved = resolve_store_url(url)
    scheme = resolved.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            "tacoq postgres needs a postgresql:// URL: pass --url or set TACOQ_STORE_URL"
        )
    return parse_store_url(resolved, resolve_namespace(namespace))


def migrate(url: UrlOption = None, namespace: NamespaceOption = None) -> None:
    """Create or upgrade the store schema (idempotent; safe when run twice at once)."""
    from tacoq_postgres.report import run_migrations

    settings = _settings(url, namespace)
    applied, version = asyncio.run(run_migrations(settings))
    for name in applied:
        typer.echo(f"applied {name}")
    state = "migrated to" if applied else "already at"
    typer.echo(f"schema {settings.schema} {state} version {version}")


def stats(
    url: UrlOption = None,
    namespace: NamespaceOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tasks by status and kind, the oldest pending task, expired tasks awaiting cleanup."""
    from tacoq.model.task import utcnow
    from tacoq_postgres.report import collect

    report = asyncio.run(collect(_settings(url, namespace), utcnow()))
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
        help="The Postgres store: migrations and statistics.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )
    group.command("migrate")(migrate)
    group.command("stats")(stats)
    return group
