"""Each package declares exactly the third-party distributions its code imports.

The imports are read from the source (every ``import`` and ``from ... import`` of every module,
type-only ones included); the distributions that provide them come from the installed metadata
(``importlib.metadata.packages_distributions``), and a requirement's extras count for the
distributions they bring (``psycopg[pool]`` declares ``psycopg-pool``). An import of an
undeclared distribution works only by accident (another package pulled it in); a declared one
nobody imports makes every user install it for nothing.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package folder -> its import package's folder
PACKAGES = {
    "core": "core/src/tacoq",
    "cli": "cli/src/tacoq_cli",
    "plugins/tacoq-rabbit": "plugins/tacoq-rabbit/src/tacoq_rabbit",
    "plugins/tacoq-postgres": "plugins/tacoq-postgres/src/tacoq_postgres",
    "plugins/tacoq-hotreload": "plugins/tacoq-hotreload/src/tacoq_hotreload",
}
#: Declared though not imported, each for a reason the package states next to it.
NOT_IMPORTED = {
    # the watcher runs the worker as `python -m tacoq_cli worker ...` (checked below)
    "plugins/tacoq-hotreload": {"tacoq"},
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def normalize(name: str) -> str:
    """A distribution name as PyPI compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_roots(folder: Path) -> set[str]:
    """Top-level module names imported anywhere under ``folder`` (absolute imports only)."""
    roots: set[str] = set()
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots - set(sys.stdlib_module_names) - {"__future__"}


@cache
def providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def imported_distributions(package: str) -> set[str]:
    """The distributions providing what ``package`` imports (its own import package aside)."""
    own = Path(PACKAGES[package]).name
    found = set()
    for root in imported_roots(ROOT / PACKAGES[package]) - {own}:
        dists = providers().get(root)
        assert dists, f"{package} imports {root!r}, which no installed distribution provides"
        found.update(normalize(d) for d in dists)
    return found


def declared_distributions(package: str) -> set[str]:
    """Every requirement of ``package`` (extras included), with what their extras bring."""
    project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    declared = set()
    for requirement in requirements:
        match = _NAME.match(requirement)
        assert match, requirement
        name, extras = match[1], match[2]
        declared.add(normalize(name))
        for extra in (extras or "").split(","):
            if extra.strip():
                declared |= brought_by(name, extra.strip())
    return declared


def brought_by(distribution: str, extra: str) -> set[str]:
    """The distributions ``distribution[extra]`` adds (from its installed metadata)."""
    brought = set()
    for line in metadata.requires(distribution) or []:
        if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", line):
            match = _NAME.match(line)
            assert match, line
            brought.add(normalize(match[1]))
    return brought


@pytest.mark.parametrize("package", list(PACKAGES))
def test_every_imported_distribution_is_declared(package: str) -> None:
    missing = imported_distributions(package) - declared_distributions(package)
    assert not missing, f"{package} imports {sorted(missing)} without declaring them"


@pytest.mark.parametrize("package", list(PACKAGES))
def test_every_declared_distribution_is_imported(package: str) -> None:
    unused = (
        declared_distributions(package)
        - imported_distributions(package)
        - NOT_IMPORTED.get(package, set())
    )
    # An extra's additions need no import of their own (psycopg[binary] ships libpq).
    project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
    named = {
        normalize(m[1])
        for r in [*project.get("dependencies", [])]
        + [r for extra in project.get("optional-dependencies", {}).values() for r in extra]
        if (m := _NAME.match(r))
    }
    assert not (unused & named), f"{package} declares {sorted(unused & named)} but never imports"


def test_the_hotreload_plugin_runs_the_cli_it_declares() -> None:
    source = "".join(
        p.read_text() for p in (ROOT / PACKAGES["plugins/tacoq-hotreload"]).rglob("*.py")
    )
    assert '"tacoq_cli"' in source
