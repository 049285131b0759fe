"""``tacoq version`` (and ``tacoq --version``): the versions of the ``tacoq`` CLI, of
``tacoq-core`` and of every installed plugin distribution."""

from __future__ import annotations

import json
from importlib import metadata

import typer

from tacoq_cli.options import JsonOption

__all__ = ["DISTRIBUTIONS", "print_version", "register", "version", "version_lines"]

#: The distributions whose versions ``--version`` prints, in order.
DISTRIBUTIONS = ("tacoq", "tacoq-core")


def versions() -> dict[str, str]:
    """``{distribution: version}`` for the CLI and core (``not installed`` when missing),
    then each distribution that provides a loaded plugin."""
    found: dict[str, str] = {}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    try:
        from tacoq.plugins import get_plugin_host

        infos = get_plugin_host().plugin_infos()
    except Exception:  # the versions are wanted most when plugins are broken
        infos = []
    for info in infos:
        if info.version and info.distribution not in found:
            found[info.distribution] = info.version
    return found


def version_lines() -> list[str]:
    """``"<distribution> <version>"`` for the CLI and core (``not installed`` when missing)."""
    found = versions()
    return [f"{dist} {found[dist]}" for dist in DISTRIBUTIONS]


def print_version(value: bool) -> None:
    """Eager ``--version`` callback: print the versions and stop."""
    if value:
        for line in version_lines():
            print(line)
        raise typer.Exit()


def version(json_output: JsonOption = False) -> None:
    """Print the versions of tacoq, tacoq-core and each installed plugin distribution.

    Examples:

    \b
      tacoq version
      tacoq version --json
    """
    found = versions()
    if json_output:
        print(json.dumps(found, indent=2))
        return
    for dist, number in found.items():
        print(f"{dist} {number}")


def register(app: typer.Typer) -> None:
    """Add ``tacoq version`` to ``app``."""
    app.command("version")(version)
