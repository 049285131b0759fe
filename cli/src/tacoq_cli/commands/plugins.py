"""``tacoq plugins``: every plugin, what it provides, and the ones that failed to load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any

import typer

from tacoq_cli.errors import one_line

__all__ = ["PluginRow", "plugin_rows", "plugins", "register"]


@dataclass(frozen=True, slots=True)
class PluginRow:
    """One line of the listing: a loaded plugin, or one that failed to load."""

    name: str
    distribution: str
    version: str
    status: str
    provides: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()
    error: str = ""
    remedy: str = ""

    def as_json(self) -> dict[str, Any]:
        """The row as a JSON object (failed rows carry ``error`` and ``remedy``)."""
        data: dict[str, Any] = {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
        }
        if self.status == "failed":
            data["error"] = self.error
            data["remedy"] = self.remedy
        else:
            data["provides"] = list(self.provides)
            data["hooks"] = list(self.hooks)
        return data


def plugin_rows() -> list[PluginRow]:
    """The loaded plugins (built-ins first, in load order), then the ones that failed."""
    from tacoq.plugins import get_plugin_host

    host = get_plugin_host()
    rows = [
        PluginRow(
            name=info.name,
            distribution=info.distribution,
            version=info.version,
            status="loaded",
            provides=info.provides,
            hooks=info.hooks,
        )
        for info in host.plugin_infos()
    ]
    rows.extend(
        PluginRow(
            name=failure.name,
            distribution=failure.distribution,
            version=_installed_version(failure.distribution),
            status="failed",
            error=one_line(failure.error),
            remedy=one_line(failure.remedy),
        )
        for failure in host.failures
    )
    return rows


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except (metadata.PackageNotFoundError, ValueError):
        return ""


def plugins(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
) -> None:
    """List every plugin, what it provides, and any that failed to load (with a remedy)."""
    rows = plugin_rows()
    if json_output:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return
    _print_table(rows)


def _print_table(rows: list[PluginRow]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="TacoQ plugins", title_justify="left")
    table.add_column("plugin", no_wrap=True)
    table.add_column("distribution")
    table.add_column("status", no_wrap=True)
    table.add_column("provides / problem", overflow="fold")
    for row in rows:
        distribution = f"{row.distribution} {row.version}".strip()
        if row.status == "failed":
            detail = Text(f"{row.error}\n{row.remedy}", style="red")
            status = Text("failed", style="bold red")
        else:
            detail = Text("\n".join(row.provides or [_hook_label(h) for h in row.hooks]))
            status = Text("loaded", style="green")
        table.add_row(Text(row.name), Text(distribution), status, detail)
    console = Console()
    console.print(table)
    failed = sum(row.status == "failed" for row in rows)
    if failed:
        console.print(Text(f"{failed} plugin(s) failed to load and were skipped.", style="yellow"))


def _hook_label(hook: str) -> str:
    """``tacoq_worker_runner`` -> ``worker runner``: how a hook reads in the table."""
    return hook.removeprefix("tacoq_").replace("_", " ")


def register(app: typer.Typer) -> None:
    """Add ``tacoq plugins`` to ``app``."""
    app.command("plugins")(plugins)
