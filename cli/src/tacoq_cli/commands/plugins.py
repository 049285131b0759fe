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
    """List every plugin, what it provides, and any that failed to load (with a remedy).

    Examples:

    \b
      tacoq plugins
      tacoq plugins --json
      TACOQ_BLOCK_PLUGINS=hotreload tacoq plugins
    """
    rows = plugin_rows()
    if json_output:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return
    _print_table(rows)


def _print_table(rows: list[PluginRow]) -> None:
    """One block per plugin: ``name  distribution version  status`` on its first line, then
    what it provides (or its error and remedy), wrapped at the terminal's width between items
    and words, never inside a name or URL."""
    import shutil
    import textwrap

    width = max(40, shutil.get_terminal_size().columns)
    name_width = max((len(row.name) for row in rows), default=0)
    failed = sum(row.status == "failed" for row in rows)
    print(f"TacoQ plugins: {len(rows) - failed} loaded, {failed} failed")
    for row in rows:
        distribution = f"{row.distribution} {row.version}".strip()
        print()
        header = f"{row.name.ljust(name_width)}  {distribution}  {row.status}"
        if len(header) > width:  # a narrow terminal: the name alone, the rest below
            header = f"{row.name}\n  {distribution}  {row.status}"
        print(header)
        if row.status == "failed":
            for detail in (f"error: {row.error}", f"remedy: {row.remedy}"):
                wrapped = textwrap.wrap(
                    detail,
                    width=width,
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                print("\n".join(wrapped))
        else:
            listed = row.provides or tuple(_hook_label(h) for h in row.hooks)
            print("\n".join(_item_lines("  provides: ", list(listed) or ["nothing"], width)))
    if failed:
        print()
        print(f"{failed} plugin(s) failed to load and were skipped.")


def _item_lines(head: str, items: list[str], width: int) -> list[str]:
    """``head`` and the comma-separated ``items`` in lines of at most ``width`` columns,
    broken only between items (an item longer than a line gets a line of its own)."""
    lines = [head.rstrip()]
    for index, item in enumerate(items):
        text = item + ("," if index < len(items) - 1 else "")
        if len(lines[-1]) + 1 + len(text) > width and lines[-1].strip():
            lines.append("    " + text)
        else:
            lines[-1] += " " + text
    return lines


def _hook_label(hook: str) -> str:
    """``tacoq_worker_runner`` -> ``worker runner``: how a hook reads in the listing."""
    return hook.removeprefix("tacoq_").replace("_", " ")


def register(app: typer.Typer) -> None:
    """Add ``tacoq plugins`` to ``app``."""
    app.command("plugins")(plugins)
