"""Materialise the base side of ``--compare REV``: REV's files and a virtual environment with
REV's own packages, cached by commit under ``.bench/compare/`` (ignored by git).

- REV's files come from ``git archive`` (nothing is checked out: no worktree is added, the
  repository's index and worktrees are untouched) into ``.bench/compare/<commit>-<python>/src``;
- its packages are found in REV's own folders, the way the noxfile finds them: every
  ``*/pyproject.toml`` or ``*/*/pyproject.toml`` whose project is ``tacoq`` or ``tacoq-*``
  (core, cli, each plugin; a plugin one revision has and the other lacks is simply there or
  not), ``tacoq-core`` with the extras the bench session installs when REV defines them;
- they are installed, non-editable, with :data:`BASE_TOOLS`, in ONE pip call into
  ``.../venv`` (one call lets pip resolve every ``tacoq-core==<version>`` pin against REV's
  folder), logged to ``.../build.log``.

A build is reused while its recipe (interpreter, extras, tools) is the same; the
:data:`KEEP_BUILDS` most recently used builds are kept, older ones deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT

#: Where the builds of the revisions compared against live (``.gitignore`` covers ``.bench/``).
CACHE = ROOT / ".bench" / "compare"
#: What the base side needs beside TacoQ's packages: psutil (CPU) and aio-pika (raw baselines). The
#: peers (Celery, Dramatiq) are not needed: a comparison measures TacoQ's variants only.
BASE_TOOLS = ("psutil>=5.9", "aio-pika>=9.4,<11")
#: The extras of ``tacoq-core`` the bench session installs (``noxfile.install_local``).
CORE_EXTRAS = ("relay", "testing")
#: The extras of plugins the bench session installs, where REV defines them
#: (``noxfile.PLUGIN_EXTRAS``).
PLUGIN_EXTRAS = {"tacoq-postgres": ("binary",)}
#: Builds kept in the cache (the most recently used).
KEEP_BUILDS = 4
#: Seconds allowed for one pip install.
PIP_TIMEOUT_S = 900.0


class CompareError(Exception):
    """The comparison cannot run; the message says why, in one line."""


def git(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``git args`` in ``root``; :class:`CompareError` when git cannot run at all."""
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompareError(f"cannot run git: {exc}") from None


def resolve_rev(rev: str, root: Path = ROOT) -> str:
    """The full commit hash ``rev`` names in the repository at ``root``.

    Raises :class:`CompareError` ("unknown revision ...") when git cannot resolve it to a commit.
    """
    if not rev.strip() or rev.startswith("-"):
        raise CompareError(f"unknown revision {rev!r}: give a commit, branch or tag")
    found = git(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", root=root
    )
    sha = found.stdout.strip()
    if found.returncode != 0 or not sha:
        raise CompareError(f"unknown revision {rev!r}: git cannot resolve it to a commit here")
    return sha


def describe_commit(sha: str, root: Path = ROOT) -> str:
    """``<short hash> <subject>`` of a commit (at most 80 characters), for the report."""
    shown = git("log", "-1", "--format=%h %s", sha, root=root).stdout.strip() or sha[:10]
    return shown if len(shown) <= 80 else shown[:79] + "…"


def uncommitted_changes(root: Path = ROOT) -> list[str]:
    """The paths ``git status`` reports changed or untracked (ignored files are not)."""
    status = git("status", "--porcelain", root=root)
    return [line[3:] for line in status.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class Package:
    """One of our distributions in a source tree."""

    folder: Path
    name: str
    extras: tuple[str, ...] = ()

    def requirement(self, tree: Path) -> str:
        """The pip requirement that installs it from its folder: ``./core[relay,testing]``."""
        path = f"./{self.folder.relative_to(tree).as_posix()}"
        return f"{path}[{','.join(self.extras)}]" if self.extras else path


def package_folders(tree: Path) -> list[Package]:
    """Every folder of ``tree`` (one or two levels down) whose ``pyproject.toml`` names a
    ``tacoq`` or ``tacoq-*`` project, core first, then the cli, then the others by folder;
    :class:`CompareError` when ``tacoq-core`` is not one."""
    found: list[Package] = []
    pyprojects = sorted({*tree.glob("*/pyproject.toml"), *tree.glob("*/*/pyproject.toml")})
    for pyproject in pyprojects:
        if any(part.startswith(".") for part in pyproject.relative_to(tree).parts):
            continue
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        name = str(project.get("name", ""))
        if name != "tacoq" and not name.startswith("tacoq-"):
            continue
        defined = project.get("optional-dependencies", {})
        wanted = CORE_EXTRAS if name == "tacoq-core" else PLUGIN_EXTRAS.get(name, ())
        extras = tuple(e for e in wanted if e in defined)
        found.append(Package(pyproject.parent, name, extras))
    # The noxfile's order: core, cli, then the plugins. pip (23.2) fails to match the cli's
    # ``tacoq-core[relay]`` pin to the core folder when the cli comes first.
    found.sort(key=lambda package: (package.name != "tacoq-core", package.name != "tacoq"))
    if not any(package.name == "tacoq-core" for package in found):
        raise CompareError(
            f"no tacoq-core package (a folder whose pyproject.toml names it) in {tree}"
        )
    return found


def source_hashes(tree: Path) -> set[str]:
    """The SHA-256 of every ``.py`` file in ``tree``'s package folders: an installed TacoQ whose
    every module is among them was built from this tree."""
    hashes: set[str] = set()
    for package in package_folders(tree):
        for path in package.folder.rglob("*.py"):
            hashes.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return hashes


@dataclass(frozen=True)
class Build:
    """A revision ready to run: its files and the interpreter of its virtual environment."""

    commit: str
    tree: Path
    python: Path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two runs building the same revision wait in turn)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export(sha: str, dest: Path) -> None:
    """Write the files of commit ``sha`` to ``dest`` with ``git archive``."""
    dest.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "archive", "--format=tar", sha],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert archive.stdout is not None
    try:
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            tar.extractall(dest, filter="data")
    except tarfile.TarError as exc:
        archive.kill()
        raise CompareError(f"git archive {sha[:10]} failed: {exc}") from None
    finally:
        _, stderr = archive.communicate()
    if archive.returncode != 0:
        message = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
        raise CompareError(f"git archive {sha[:10]} failed: {message[0]}")


def _recipe() -> dict[str, object]:
    """What a build depends on besides the commit (a different recipe builds anew)."""
    return {"python": sys.version, "extras": list(CORE_EXTRAS), "tools": list(BASE_TOOLS)}


def _run_logged(argv: list[str], cwd: Path, log: Path, what: str) -> None:
    """Run ``argv``, appending its output to ``log``; :class:`CompareError` when it fails."""
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            completed = subprocess.run(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=PIP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CompareError(f"{what} took more than {PIP_TIMEOUT_S:g}s; see {log}") from None
    if completed.returncode != 0:
        lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        last = lines[-1].strip()[:200] if lines else "?"
        raise CompareError(f"{what} failed (exit {completed.returncode}): {last}; see {log}")


def build(sha: str, progress: Callable[[str], None]) -> Build:
    """REV's files and virtual environment, built now or reused from the cache."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    home = CACHE / f"{sha}-{version}"
    tree, venv, ready = home / "src", home / "venv", home / "ready.json"
    python = venv / "bin" / "python"
    short = sha[:10]
    with _locked(CACHE / f"{sha}-{version}.lock"):
        if ready.is_file() and python.exists():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(ready.read_text(encoding="utf-8")).get("recipe") == _recipe():
                    ready.touch()
                    progress(f"base {short}: reusing the build in {home.relative_to(ROOT)}")
                    return Build(sha, tree, python)
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        _export(sha, tree)
        requirements = [package.requirement(tree) for package in package_folders(tree)]
        log = home / "build.log"
        progress(
            f"base {short}: building in {home.relative_to(ROOT)}: pip install "
            f"{' '.join(requirements + list(BASE_TOOLS))} (log: {log.relative_to(ROOT)})"
        )
        what = f"building {short} (python -m venv)"
        _run_logged([sys.executable, "-m", "venv", str(venv)], home, log, what)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        what = f"building {short} (pip install of its packages)"
        _run_logged([*pip, *requirements, *BASE_TOOLS], tree, log, what)
        record = {"recipe": _recipe(), "requirements": requirements, "built": time.time()}
        ready.write_text(json.dumps(record, indent=2), encoding="utf-8")
    _prune(keep=home)
    return Build(sha, tree, python)


def _prune(keep: Path) -> None:
    """Delete the builds beyond the :data:`KEEP_BUILDS` most recently used (never ``keep``)."""
    homes = [path.parent for path in CACHE.glob("*/ready.json")]
    homes.sort(key=lambda home: (home / "ready.json").stat().st_mtime, reverse=True)
    for home in homes[KEEP_BUILDS:]:
        if home != keep:
            shutil.rmtree(home, ignore_errors=True)
            with contextlib.suppress(OSError):
                home.with_name(f"{home.name}.lock").unlink()
