"""Mounting the command groups plugins contribute (``tacoq_cli_group``) under ``tacoq NAME``.

A group whose name collides with a core command or with an earlier plugin's group is skipped
with one warning line naming both, so one misbehaving plugin never takes the CLI down.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import typer

from tacoq_cli.errors import print_warning
from tacoq_cli.helptext import plain_help

if TYPE_CHECKING:
    from tacoq.plugins import PluginHost

__all__ = ["CORE_COMMANDS", "mount_plugin_groups"]

#: Names the core CLI owns (some are still to come); no plugin group may take them.
CORE_COMMANDS = frozenset(
    {
        "worker",
        "workers",
        "kinds",
        "demo",
        "plugins",
        "relay",
        "publish",
        "task",
        "version",
        "dlq",
        "namespace",
    }
)

_GROUP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def mount_plugin_groups(app: typer.Typer, host: PluginHost) -> list[str]:
    """Add each plugin's group to ``app``; returns the names mounted, in order.

    Refused (with a warning on stderr, and skipped): a name taken by a core command or by
    another plugin's group, a name that is not a lower-case word, and an answer that is not a
    ``typer.Typer``.
    """
    try:
        groups = host.cli_groups()
    except Exception as exc:  # a plugin's hook raised: keep the core commands usable
        print_warning(f"plugin command groups were not loaded: {type(exc).__name__}: {exc}")
        return []
    owners: dict[str, str] = {}
    for name, group, plugin in groups:
        owner = _describe(host, plugin)
        if not isinstance(name, str) or not _GROUP_NAME.match(name):
            print_warning(
                f"{owner} offers a command group named {name!r}, which is not a lower-case "
                "word; group skipped"
            )
            continue
        if name in CORE_COMMANDS:
            print_warning(
                f"{owner} offers a command group named {name!r}, which collides with the core "
                f"command `tacoq {name}`; group skipped"
            )
            continue
        if name in owners:
            print_warning(
                f"{owner} offers a command group named {name!r}, which {owners[name]} already "
                "provides; group skipped (block one of them with TACOQ_BLOCK_PLUGINS)"
            )
            continue
        if not isinstance(group, typer.Typer):
            print_warning(
                f"{owner} offers command group {name!r} as a {type(group).__name__}, "
                "not a typer.Typer; group skipped"
            )
            continue
        app.add_typer(plain_help(group), name=name)
        owners[name] = owner
    return list(owners)


def _describe(host: PluginHost, plugin: str) -> str:
    distribution = host.distributions.get(plugin, ("unknown", ""))[0]
    return f"plugin {plugin!r} ({distribution})"
