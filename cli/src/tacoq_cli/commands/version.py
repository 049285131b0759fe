"""``tacoq --version``: the versions of the ``tacoq`` CLI and of ``tacoq-core``."""

from __future__ import annotations

from importlib import metadata

import typer

__all__ = ["DISTRIBUTIONS", "print_version", "version_lines"]

#: The distributions whose versions ``--version`` prints, in order.
DISTRIBUTIONS = ("tacoq", "tacoq-core")


def version_lines() -> list[str]:
    """``"<distribution> <version>"`` for the CLI and core (``not installed`` when missing)."""
    lines = []
    for dist in DISTRIBUTIONS:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{dist} {version}")
    return lines


def print_version(value: bool) -> None:
    """Eager ``--version`` callback: print the versions and stop."""
    if value:
        for line in version_lines():
            print(line)
        raise typer.Exit()
