"""`tacoq --help` and `tacoq plugins` stay light: no broker, store or reload client is imported.

Run in a fresh interpreter (the test process has imported plenty), recording ``sys.modules``
after the command ran. The installed ``tacoq`` plugins are part of every assertion message,
so a failure after a plugin arrives says which plugin imports too much.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

HEAVY = ("aio_pika", "pika", "psycopg", "psycopg_pool", "watchfiles")
#: Core modules a listing has no reason to import (they pull in the worker runtime).
HEAVY_CORE = ("tacoq.worker.app", "tacoq.worker.runtime", "tacoq.publishing.publisher")

SCRIPT = textwrap.dedent(
    """
    import sys
    from tacoq_cli.main import run
    try:
        run(sys.argv[2:])
    finally:
        with open(sys.argv[1], "w") as out:
            out.write("\\n".join(sorted(sys.modules)))
    """
)


def installed_plugins() -> list[str]:
    """``name = value (distribution)`` for every entry point in the ``tacoq`` group."""
    return sorted(
        f"{ep.name} = {ep.value} ({ep.dist.name if ep.dist else '?'})"
        for ep in metadata.entry_points(group="tacoq")
    )


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"]])
def test_command_imports_no_heavy_client(argv: list[str], tmp_path: Path) -> None:
    modules_file = tmp_path / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(modules_file), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    plugins = installed_plugins() or ["(none)"]
    context = f"`tacoq {' '.join(argv)}` with installed tacoq plugins: {plugins}"
    assert result.returncode == 0, f"{context}\n{result.stdout}\n{result.stderr}"
    modules = set(modules_file.read_text().split())
    assert "tacoq_cli.main" in modules, context  # the recording really ran after the command
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY_CORE)
    assert not heavy, f"{context} imported {heavy}"
