"""What the reloader watches and which changes matter — found without importing user code.

The roots are the directory of the app's module (located with :mod:`importlib` finders, which
read the file system and never execute the module) or the current directory, plus every
``--reload-dir``. Nothing inside ``site-packages`` is ever watched, and changes inside caches,
version control and virtual environments are ignored.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import site
import sysconfig
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "IGNORED_DIRS",
    "WATCHED_SUFFIXES",
    "check_syntax",
    "find_module_dir",
    "is_relevant",
    "is_site_packages",
    "watch_roots",
]

log = logging.getLogger("tacoq.hotreload")

#: Directory names whose contents never trigger a restart.
IGNORED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".nox",
        ".tox",
        "node_modules",
        "site-packages",
        "dist-packages",
    }
)
#: File suffixes whose changes restart the worker: source and the usual configuration files.
WATCHED_SUFFIXES = frozenset({".py", ".toml", ".json", ".yaml", ".yml", ".ini", ".cfg", ".env"})


def _site_dirs() -> list[Path]:
    found = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    found.update(site.getsitepackages())
    user = site.getusersitepackages()
    if user:
        found.add(user)
    return [Path(p).resolve() for p in found]


def is_site_packages(path: Path) -> bool:
    """True when ``path`` is inside an installation directory (site- or dist-packages)."""
    resolved = path.resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return True
    return any(resolved.is_relative_to(site_dir) for site_dir in _site_dirs())


def find_module_dir(module_name: str, search_path: Iterable[str]) -> Path | None:
    """The directory of ``module_name`` (``pkg.sub.mod``), without importing anything.

    For a top-level module file that is its directory; for a module inside a package it is the
    top-level package's directory, so every module of the package is watched. ``None`` when it
    cannot be found.
    """
    top = module_name.partition(".")[0]
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, list(search_path))
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        locations = list(spec.submodule_search_locations)
        return Path(locations[0]).resolve() if locations else None
    if spec.origin and os.path.isfile(spec.origin):
        return Path(spec.origin).resolve().parent
    return None


def watch_roots(app_ref: str, reload_dirs: Iterable[str], cwd: Path) -> list[Path]:
    """The directories to watch for ``app_ref`` (``MODULE:ATTR``), outermost first, no overlap."""
    module_name = app_ref.partition(":")[0]
    roots: list[Path] = []
    module_dir = find_module_dir(module_name, [str(cwd), *_sys_path()])
    if module_dir is not None and not is_site_packages(module_dir):
        roots.append(module_dir)
    else:
        if module_dir is not None:
            log.warning("%s is installed in %s; watching %s instead", module_name, module_dir, cwd)
        roots.append(cwd.resolve())
    for extra in reload_dirs:
        path = (cwd / extra).resolve()
        if not path.is_dir():
            log.warning("--reload-dir %s is not a directory; not watched", extra)
        elif is_site_packages(path):
            log.warning("--reload-dir %s is inside site-packages; not watched", extra)
        else:
            roots.append(path)
    unique: list[Path] = []
    for root in sorted(set(roots), key=lambda p: len(p.parts)):
        if not any(root.is_relative_to(kept) for kept in unique):
            unique.append(root)
    return unique


def _sys_path() -> list[str]:
    import sys

    return [p for p in sys.path if p]


def is_relevant(path: str, roots: Iterable[Path] = ()) -> bool:
    """True when a change of ``path`` should restart the worker.

    Only the part of ``path`` below the watched root that holds it is checked for ignored
    directories, so a project that itself lives under, say, ``~/venv/`` still reloads.
    """
    full = Path(path)
    parts = full.parts
    for root in roots:
        if full.is_relative_to(root):
            parts = full.relative_to(root).parts
            break
    if IGNORED_DIRS.intersection(parts[:-1]):
        return False
    name = parts[-1] if parts else ""
    if name.startswith((".#", "~")) or name.endswith("~"):  # editor lock and backup files
        return False
    return Path(name).suffix in WATCHED_SUFFIXES


def check_syntax(paths: Iterable[str]) -> str | None:
    """Compile the changed Python files; the first error as one short line, or ``None``."""
    for path in sorted(paths):
        if not path.endswith(".py") or not os.path.isfile(path):
            continue
        try:
            source = Path(path).read_bytes()
            compile(source, path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            line = f":{exc.lineno}" if exc.lineno else ""
            text = f" ({exc.text.strip()})" if exc.text and exc.text.strip() else ""
            return f"{exc.filename or path}{line}: {type(exc).__name__}: {exc.msg}{text}"
        except (OSError, ValueError) as exc:  # unreadable, or a null byte in the source
            return f"{path}: {exc}"
    return None
